"""Sweep: every combination of a grid of config values, each a full build, side by side.

`python -m generator sweep CONFIG --grid model.alpha=0.25,0.5 --grid model.input_shape=...`
builds each variant exactly as `build` would (trained and evaluated when the config trains)
into `<output.dir>/<name>_sweep/<variant>/`, and ranks them in `sweep.json`, `sweep.csv` and
`sweep.md` (`generator.records.sweep_record`).

The driver (this module, no TensorFlow) validates every variant's config before any work, then
hands each variant to a worker as an independent task: a process pool here (`--jobs`), or Ray
(`generator.runs.ray_backend`). A worker imports TensorFlow once and builds variant after variant in
it; it builds into a temporary folder of its own and returns the files' bytes, and the driver
publishes them, so workers on other machines need no shared disk for outputs. A variant whose
build fails is recorded with its one-line error and the others go on.

An interrupted sweep resumes: a published variant whose recorded config fingerprint matches is
not rebuilt (it changes with the config, the grid values and the generator version; not with
the contents of the image folders).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Generator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from generator import __version__
from generator.config.loading import apply_override, config_from_raw, read_config_file
from generator.config.schema import MAX_NAME_LENGTH, Config
from generator.errors import UserError, VerificationError
from generator.records.files import BUILD_SCHEMA_VERSION
from generator.runs.publish import clear_debris, publish_build, staged
from generator.support.processes import die_with_parent, end_children, is_running
from generator.support.quiet import muted, quiet_tensorflow

# What a variant's folder records about the config it was built from, for resuming.
FINGERPRINT_FILE = "sweep_variant.json"
# Grid keys whose value alone names the setting in a variant's name; `a` for alpha.
_SHORT_KEYS = {"model.backbone": "", "model.input_shape": "", "model.alpha": "a"}


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict[str, Any]  # dotted key -> value, in grid order
    config: Config
    fingerprint: str  # of the variant's config mapping and the generator version


@dataclass(frozen=True)
class VariantOutcome:
    """What a worker returns: the build's report and files, or the one-line reason it failed."""

    name: str
    info: dict | None
    files: dict[str, bytes]  # path relative to the variant's folder -> content
    error: str | None


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`["model.alpha=0.25,0.5", "model.input_shape=[64,64,3],[96,96,3]"]` -> values by key.

    Values are YAML, split at the commas outside brackets and quotes."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise UserError(
                f"--grid {item!r}: expected KEY=VALUE,VALUE,..., e.g. --grid model.alpha=0.25,0.5"
            )
        if key in grid:
            raise UserError(f"--grid {key}: given twice: put all its values in one --grid")
        values = []
        for part in _split_values(text):
            try:
                values.append(yaml.safe_load(part))
            except yaml.YAMLError:
                raise UserError(f"--grid {key}: {part!r} is not a valid YAML value") from None
        if len(set(map(json.dumps, values))) != len(values):
            raise UserError(f"--grid {key}: a value is listed twice: list each value once")
        grid[key] = values
    if not grid:
        raise UserError("sweep: no --grid given: e.g. --grid model.alpha=0.25,0.5")
    return grid


def _split_values(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    if any(not part for part in parts):
        raise UserError(f"--grid ...={text}: an empty value between commas")
    return parts


def plan_variants(
    path: Path, overrides: list[str], grid: dict[str, list[Any]], output_dir: Path | None
) -> tuple[Config, list[Variant]]:
    """The base config and every variant's validated config, before any work starts."""
    raw = read_config_file(path)
    for override in overrides:
        apply_override(raw, override)
    base = config_from_raw(copy.deepcopy(raw), path, output_dir)
    sweep_dir = base.output.dir / f"{base.name}_sweep"
    variants, names = [], set()
    for values in itertools.product(*grid.values()):
        settings = dict(zip(grid, values, strict=True))
        name = _unique(variant_name(settings), names)
        mapping = copy.deepcopy(raw)
        for key, value in settings.items():
            try:
                apply_override(mapping, f"{key}={json.dumps(value)}")
            except UserError as error:
                raise UserError(f"--grid {key}: {_after_set(error)}") from None
        mapping["name"] = name
        mapping["output"] = {**(mapping.get("output") or {}), "dir": str(sweep_dir)}
        try:
            config = config_from_raw(mapping, path)
        except UserError as error:
            setting = ", ".join(f"{k}={json.dumps(v)}" for k, v in settings.items())
            raise UserError(f"--grid: the variant {setting}: {error}") from None
        fingerprint = hashlib.sha256(
            json.dumps([mapping, __version__], sort_keys=True, default=str).encode()
        ).hexdigest()
        variants.append(Variant(name, settings, config, fingerprint))
    return base, variants


def _after_set(error: UserError) -> str:
    """apply_override's message without its `--set KEY` opening, which names the wrong flag."""
    return re.sub(r"^--set [^:]*: ", "", str(error))


def variant_name(settings: dict[str, Any]) -> str:
    """A short readable folder name, e.g. `mobilenet_v2-a0_5-96x96x3`."""
    parts = []
    for key, value in settings.items():
        text = "x".join(map(str, value)) if isinstance(value, list) else str(value)
        prefix = _SHORT_KEYS.get(key, key.rsplit(".", 1)[-1] + "_")
        parts.append(prefix + text)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", "-".join(parts))


def _unique(name: str, taken: set[str]) -> str:
    if len(name) > MAX_NAME_LENGTH - 10:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 20]}-{digest}"
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    taken.add(candidate)
    return candidate


def complete(variant: Variant) -> dict | None:
    """The published build's report, when the variant was built from the same config by a
    generator writing the same record version, and every file it wrote is there as it was
    written (a file cut short, edited or removed since means the variant is built again)."""
    folder = variant.config.output.dir / variant.name
    try:
        recorded = json.loads((folder / FINGERPRINT_FILE).read_text())
        info = json.loads((folder / f"{variant.name}_quantization_info.json").read_text())
        files = recorded["files"]
        intact = all(_digest((folder / name).read_bytes()) == files[name] for name in files)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    current = info.get("schema_version") == BUILD_SCHEMA_VERSION  # an older one is made again
    same = recorded.get("fingerprint") == variant.fingerprint
    return info if intact and current and same else None


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def build_variant(config: Config, debug: bool = False) -> VariantOutcome:
    """A worker's task: build one variant in a temporary folder and return its files."""
    global _building
    quiet_tensorflow(enabled=not debug)
    with muted():
        from generator.runs import pipeline
    folder = _building = Path(tempfile.mkdtemp(prefix=f"{_BUILDING}{os.getpid()}-{config.name}-"))
    try:
        config = replace(config, output=replace(config.output, dir=folder))
        try:
            info, _ = pipeline.run_build(config, _SilentStage())
        except (UserError, VerificationError) as error:
            return VariantOutcome(config.name, None, {}, str(error))
        built = folder / config.name
        files = {
            path.relative_to(built).as_posix(): path.read_bytes()
            for path in sorted(built.rglob("*"))
            if path.is_file()
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _building = None
    return VariantOutcome(config.name, info, files, None)


# The temporary folder a local worker is building in, removed if the worker is stopped, and
# the start of its name: `generator-sweep-<worker pid>-<variant>-<random>`.
_building: Path | None = None
_BUILDING = "generator-sweep-"


def _remove_dead_workers_builds() -> None:
    """Remove the temporary builds of workers that died without removing their own."""
    pattern = re.compile(rf"{_BUILDING}(\d+)-.+")
    for folder in Path(tempfile.gettempdir()).glob(f"{_BUILDING}*"):
        match = pattern.fullmatch(folder.name)
        if match and not is_running(int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)


class _SilentStage:
    """A worker prints nothing: the driver reports each variant as it finishes."""

    def __call__(self, name: str, detail: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def note(self, line: str) -> None:
        pass


def publish_variant(variant: Variant, outcome: VariantOutcome) -> None:
    """Write a successful variant's files as one folder, replacing an earlier build of it."""
    sweep_dir = variant.config.output.dir
    with staged(sweep_dir, variant.name) as staging:
        for relative, content in outcome.files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        record = {
            "fingerprint": variant.fingerprint,
            "settings": variant.settings,
            "files": {name: _digest(content) for name, content in outcome.files.items()},
        }
        (staging / FINGERPRINT_FILE).write_text(json.dumps(record, indent=2) + "\n")
        publish_build(staging, sweep_dir / variant.name)


def run_local(
    configs: list[Config], jobs: int, debug: bool
) -> Generator[VariantOutcome, None, None]:
    """Build on a pool of `jobs` worker processes, yielding each outcome as it finishes.

    A worker that dies while building (a native crash, the OOM killer) breaks the whole pool:
    the variants not yet built are then built again one at a time in a pool of one worker, so
    that the one whose worker dies again is known; it is recorded as failed and the rest go
    on."""
    pending = list(configs)
    alone = False
    while pending:
        try:
            for outcome in _pool_outcomes(pending, 1 if alone else jobs, debug):
                pending = [config for config in pending if config.name != outcome.name]
                yield outcome
        except BrokenProcessPool:
            _remove_dead_workers_builds()
            if not alone:
                alone = True
                continue
            culprit, *pending = pending  # one worker builds them in order: the first died
            yield VariantOutcome(
                culprit.name,
                None,
                {},
                "the worker process building it died (a native crash, or killed): run it "
                "alone with 'python -m generator build --debug' to see why",
            )


def _pool_outcomes(
    configs: list[Config], jobs: int, debug: bool
) -> Generator[VariantOutcome, None, None]:
    """One pool of `jobs` spawned workers, each importing TensorFlow once, up front.

    When the sweep is stopped, the workers are stopped too (Python 3.11's pool has no public
    way to: its `_processes`), and each removes its temporary folder on the way out. A worker
    stopped while sending its result leaves the pool's manager thread waiting for the rest,
    and Python joins that thread at exit: the CLI then ends the process with `os._exit`
    (`exit_now`)."""
    context = multiprocessing.get_context("spawn")
    # The workers and multiprocessing's resource tracker inherit the descriptors they start
    # with: muted, so that nothing they print reaches the user (unless --debug).
    with muted():
        pool = ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_start_worker, initargs=(debug,)
        )
        futures = [pool.submit(build_variant, config, debug) for config in configs]
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        workers = list(pool._processes.values())
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def exit_now(code: int) -> NoReturn:
    """End a stopped sweep's process without joining the pool's threads (see `run_local`):
    everything it wrote was published whole or removed already."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _start_worker(debug: bool) -> None:
    signal.signal(signal.SIGTERM, _stop)
    # A driver killed outright (SIGKILL from the OOM killer or a CI timeout) cannot stop its
    # workers: each ends itself, removing its build in progress, when the driver is gone.
    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the driver, which stops us
    quiet_tensorflow(enabled=not debug)
    with muted():
        import generator.runs.pipeline  # noqa: F401  TensorFlow, once per worker


def _stop(signum: int, frame: object) -> None:
    """Exit at once, removing the build in progress: an exception would be taken for the task's
    result by the pool, and the worker would wait for the next task."""
    end_children()  # Vela would go on writing into the build about to be removed
    if _building is not None:
        shutil.rmtree(_building, ignore_errors=True)
    os._exit(128 + signum)


def run_sweep(
    variants: list[Variant],
    outcomes: Callable[[list[Config]], Generator[VariantOutcome, None, None]],
    report: Callable[[Variant, VariantOutcome | None, dict | None], None],
) -> dict[str, tuple[VariantOutcome | None, dict | None]]:
    """Build every incomplete variant through `outcomes` (a backend), publish each success as
    it arrives and `report` it; return each variant's outcome (None when it was complete) and
    its report dictionary. Temporary builds of workers killed outright (SIGKILL, a Ray task
    whose worker died) on this machine are removed, before and after."""
    _remove_dead_workers_builds()
    sweep_dir = variants[0].config.output.dir
    sweep_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[VariantOutcome | None, dict | None]] = {}
    pending = []
    for variant in variants:
        clear_debris(sweep_dir, variant.name)
        info = complete(variant)
        if info is None:
            pending.append(variant)
        else:
            results[variant.name] = (None, info)
            report(variant, None, info)
    by_name = {variant.name: variant for variant in pending}
    if pending:
        # Closed explicitly: stopped between two outcomes, the backend still stops its workers.
        with contextlib.closing(outcomes([variant.config for variant in pending])) as finished:
            for outcome in finished:
                variant = by_name[outcome.name]
                if outcome.error is None:
                    publish_variant(variant, outcome)
                results[variant.name] = (outcome, outcome.info)
                report(variant, outcome, outcome.info)
    _remove_dead_workers_builds()  # a worker killed during this sweep left its build
    return results
