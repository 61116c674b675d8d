"""The build pipeline: build -> calibrate -> convert -> compile (Vela) -> verify -> report.

Everything is written into a hidden staging folder inside `output.dir` and moved to
`<output.dir>/<name>/` only when every stage has succeeded, so a failed or interrupted build
leaves nothing half-written (and an earlier good build stays in place until then).

Importing this module imports TensorFlow (through the build stage); `validate` never does.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from generator.build import build_model
from generator.calibrate import load_calibration_set
from generator.config import Config, display_path
from generator.convert import convert_to_tflite
from generator.errors import UserError
from generator.quiet import muted
from generator.report import quantization_info, render_markdown
from generator.tflite_file import read_tflite
from generator.vela import compile_for_target
from generator.verify import measure_fidelity

# Called as `with stage(name, detail):` around each stage; the CLI prints and times it.
StageReporter = Callable[[str, str], AbstractContextManager[None]]


def run_build(config: Config, stage: StageReporter) -> tuple[dict, list[Path]]:
    """Run every stage; return the quantization info and the paths written, in order."""
    config.output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config.name}-", dir=config.output_dir))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    try:
        info, written = _build_into(staging, config, stage)
        final = config.output_dir / config.name
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info, [final / path.relative_to(staging) for path in written]


def _build_into(folder: Path, config: Config, stage: StageReporter) -> tuple[dict, list[Path]]:
    name, model_config = config.name, config.model
    height, width, channels = model_config.input_shape
    heads = ", ".join(h.name for h in model_config.heads)
    with stage(
        "build",
        f"{model_config.backbone} alpha {model_config.alpha}, "
        f"{height}x{width}x{channels}, heads {heads}",
    ):
        model = build_model(model_config)
        keras_path = folder / f"{name}.keras"
        with muted():
            model.save(keras_path)

    with stage("calibrate", f"images from {display_path(config.calibration.data)}"):
        calibration = load_calibration_set(
            config.calibration, model_config.input_shape, model_config.seed
        )

    with stage("convert", f"quantizing on {len(calibration.calibration)} images"):
        content = convert_to_tflite(
            model, calibration.calibration, config.calibration.input_range, config.quantization
        )
        tflite_path = folder / f"{name}.tflite"
        tflite_path.write_bytes(content)
        tflite = read_tflite(content)

    targets = ", ".join(t.accelerator for t in config.vela.targets)
    with stage("compile", f"Vela for {targets}"):
        vela_results = [
            compile_for_target(
                tflite_path, target, config.vela.optimise, folder / "vela" / target.accelerator
            )
            for target in config.vela.targets
        ]
        for result in vela_results:
            if result.cpu_operators and not config.vela.allow_cpu_fallback:
                raise UserError(
                    f"vela: {result.cpu_operators} operator(s) would run on the CPU for "
                    f"{result.accelerator}: {', '.join(result.cpu_operator_names)}: set "
                    "vela.allow_cpu_fallback: true to accept that, or change the model"
                )

    with stage("verify", f"float vs quantized on {len(calibration.held_out)} held-out images"):
        fidelity = measure_fidelity(
            model,
            content,
            tflite,
            model_config.heads,
            calibration.held_out,
            config.calibration.input_range,
        )

    with stage("report", "quantization info and report"):
        info = quantization_info(
            config, model.count_params(), content, tflite, calibration, vela_results, fidelity
        )
        info_path = folder / f"{name}_quantization_info.json"
        info_path.write_text(json.dumps(info, indent=2) + "\n")
        report_path = folder / f"{name}_report.md"
        report_path.write_text(render_markdown(info))

    vela_files = [
        path
        for result in vela_results
        for path in (result.tflite_path, result.summary_path, result.per_layer_path)
    ]
    return info, [keras_path, tflite_path, *vela_files, info_path, report_path]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(staging: Path, final: Path) -> None:
    """Move the finished staging folder to `final`, replacing an earlier build."""
    if final.exists():
        old = final.with_name(f".{final.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
