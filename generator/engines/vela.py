"""Compile stage: Vela adapter. Compiles the integer .tflite for one Ethos-U target.

Vela runs as a subprocess (`python -m ethosu.vela`), so its console output is captured rather
than mixed into ours, and its results are read from the files it writes:

- `<name>_summary_<system_config>.csv`: memory, cycles, MACs and the time estimate;
- `<name>_per-layer.csv` (`--verbose-performance`): one row per operator as Vela counts them
  after its graph rewrites, with the target (NPU or CPU) of each.

Vela exits 0 even when operators fall back to the CPU, so fallback is read from the per-layer
rows, never assumed. Vela's cycle estimate is only meaningful when (nearly) every operator is
on the NPU.

Where the model and the tensor arena live is read from the .ini the target compiles with (the
memory mode names an AXI port for each, the system config names the memory behind each port),
and how much of each the compiled model needs from the model itself: its `scratch` tensor is
the NPU's part of the tensor arena, its `scratch_fast` tensor (Dedicated_Sram only) the SRAM the
NPU uses as a cache. Vela's summary calls SRAM-resident weights "on-chip flash" and its SRAM
figure leaves them out; these two sources do not.
"""

from __future__ import annotations

import configparser
import csv
import errno
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from generator.config.schema import VelaTarget
from generator.config.vela_ini import vela_ini_path
from generator.engines.tflite_file import read_tflite
from generator.errors import UserError

# How Vela's traceback ends when the file system refused a write: `OSError: [Errno 28] No space
# left on device: '/out/x_vela.tflite'`.
_REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_OS_ERROR = re.compile(r"\[Errno (?P<errno>\d+)\] (?P<reason>[^:]+)(?:: '(?P<file>[^']*)')?")


@dataclass(frozen=True)
class LayerRow:
    operator: str
    target: str
    cycles: int
    macs: int
    name: str


# What sits behind each kind of AXI port in a Vela system config.
_MEMORIES = {"Sram": "SRAM", "OffChipFlash": "flash", "OnChipFlash": "flash", "Dram": "DRAM"}


@dataclass(frozen=True)
class MemoryLayout:
    """Where a memory mode puts things: "SRAM", "flash" or "DRAM"."""

    weights: str  # the model array, read by the NPU
    arena: str  # the tensor arena
    cache: str  # the NPU's cache of the arena (Dedicated_Sram), else the arena's memory


@dataclass(frozen=True)
class VelaResult:
    target: VelaTarget
    system_config: str
    memory_mode: str
    core_clock_mhz: float
    npu_operators: int
    cpu_operators: int
    cpu_operator_names: tuple[str, ...]
    sram_kib: float
    flash_kib: float
    dram_kib: float
    inference_time_ms: float
    inferences_per_second: float
    macs: int
    cycles: int
    original_weight_bytes: int  # the .tflite's weights as Vela read them (total_original_weights)
    encoded_weight_bytes: int  # what its weight encoder made of them (total_npu_encoded_weights)
    vela_tflite_bytes: int
    scratch_bytes: int  # the compiled model's part of the tensor arena
    fast_scratch_bytes: int  # the SRAM cache a Dedicated_Sram model is given; 0 otherwise
    layout: MemoryLayout
    compiled_operators: dict[str, int]
    layers: tuple[LayerRow, ...]
    tflite_path: Path
    summary_path: Path
    per_layer_path: Path
    ini_path: Path | None  # the board's Vela .ini, written next to the results


def compile_for_target(
    *,
    tflite_path: Path,
    target: VelaTarget,
    optimise: str,
    output_dir: Path,
    arena_cache_bytes: int | None = None,
) -> VelaResult:
    """Run Vela on `tflite_path` for `target`, writing into `output_dir`.

    A board with its own system config gets its .ini written into `output_dir` first, so the
    outputs hold everything needed to re-run Vela by hand. `arena_cache_bytes` bounds the SRAM
    a Dedicated_Sram model may use as its cache (Vela's default is the whole 4 MiB it models).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    ini_path = None
    if target.board is not None and target.board.ini_text is not None:
        ini_path = output_dir / f"{target.board.name}.ini"
        ini_path.write_text(target.board.ini_text)
    command = [
        sys.executable,
        "-m",
        "ethosu.vela",
        str(tflite_path),
        "--accelerator-config",
        target.accelerator,
        "--config",
        str(ini_path) if ini_path else "Arm/vela.ini",
        "--system-config",
        target.system_config,
        "--memory-mode",
        target.memory_mode,
        "--optimise",
        optimise,
        "--output-dir",
        str(output_dir),
        "--verbose-performance",
    ]
    if arena_cache_bytes is not None:
        command += ["--arena-cache-size", str(arena_cache_bytes)]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        refused = _OS_ERROR.search(lines[-1]) if lines else None
        if refused and int(refused["errno"]) in _REFUSED:  # the folder refused Vela's files
            raise OSError(int(refused["errno"]), refused["reason"], refused["file"])
        raise UserError(
            f"Vela could not compile for {target.key}: {target.accelerator} "
            f"({target.system_config}, {target.memory_mode}): "
            f"{lines[-1] if lines else 'no message'}: check the vela.targets entry"
        )
    stem = tflite_path.stem
    summary_path = output_dir / f"{stem}_summary_{target.system_config}.csv"
    per_layer_path = output_dir / f"{stem}_per-layer.csv"
    compiled_path = output_dir / f"{stem}_vela.tflite"
    (summary,) = _read_csv(summary_path)
    layers = tuple(
        LayerRow(
            operator=row["Original Operator"],
            target=row["Target"],
            cycles=int(row["Op Cycles"]),
            macs=int(row["MAC Count"]),
            name=row["Name"],
        )
        for row in _read_csv(per_layer_path)
    )
    cpu_layers = [layer for layer in layers if layer.target != "NPU"]
    compiled = compiled_path.read_bytes()
    tensors = {tensor.name: tensor for tensor in read_tflite(compiled).tensors}
    return VelaResult(
        target=target,
        system_config=summary["system_config"],
        memory_mode=summary["memory_mode"],
        core_clock_mhz=float(summary["core_clock"]) / 1e6,
        npu_operators=len(layers) - len(cpu_layers),
        cpu_operators=len(cpu_layers),
        cpu_operator_names=tuple(f"{layer.operator} ({layer.name})" for layer in cpu_layers),
        sram_kib=float(summary["sram_memory_used"]),
        flash_kib=float(summary["off_chip_flash_memory_used"])
        + float(summary["on_chip_flash_memory_used"]),
        dram_kib=float(summary["dram_memory_used"]),
        inference_time_ms=float(summary["inference_time"]) * 1000,
        inferences_per_second=float(summary["inferences_per_second"]),
        macs=int(float(summary["nn_macs"])),
        cycles=int(float(summary["cycles_total"])),
        original_weight_bytes=int(float(summary["total_original_weights"])),
        encoded_weight_bytes=int(float(summary["total_npu_encoded_weights"])),
        vela_tflite_bytes=len(compiled),
        scratch_bytes=_size(tensors.get("scratch")),
        fast_scratch_bytes=_size(tensors.get("scratch_fast")),
        layout=memory_layout(target),
        compiled_operators=read_tflite(compiled).operator_counts(),
        layers=layers,
        tflite_path=compiled_path,
        summary_path=summary_path,
        per_layer_path=per_layer_path,
        ini_path=ini_path,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)]


def _size(tensor) -> int:
    """Bytes of one of Vela's uint8 scratch tensors, 0 when the model has none."""
    return 0 if tensor is None else int(tensor.shape[0])


def _ini(target: VelaTarget) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    if target.board is not None and target.board.ini_text is not None:
        parser.read_string(target.board.ini_text)
    else:
        parser.read(vela_ini_path())
    return parser


def memory_modes(target: VelaTarget) -> list[str]:
    """The memory modes the target's .ini defines."""
    prefix = "Memory_Mode."
    return [s.removeprefix(prefix) for s in _ini(target).sections() if s.startswith(prefix)]


def memory_layout(target: VelaTarget) -> MemoryLayout:
    """Where the target's memory mode puts the weights, the arena and the cache, as Vela's .ini
    says (a mode may `inherit` another's settings)."""
    parser = _ini(target)
    system = parser[f"System_Config.{target.system_config}"]
    mode: dict[str, str] = {}
    section = f"Memory_Mode.{target.memory_mode}"
    while section:
        mode = dict(parser[section]) | mode
        section = parser[section].get("inherit", "")
    ports = {"Axi0": system["axi0_port"], "Axi1": system["axi1_port"]}
    return MemoryLayout(
        weights=_MEMORIES[ports[mode["const_mem_area"]]],
        arena=_MEMORIES[ports[mode["arena_mem_area"]]],
        cache=_MEMORIES[ports[mode["cache_mem_area"]]],
    )
