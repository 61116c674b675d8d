"""Faults injected into real runs: a mode that fails inside a comparison, a disk that fills up, a
read-only output folder, a sweep's driver killed outright. Each ends in one line with a
documented exit code (docs/failures.md), leaves the previous result as it was, leaves no debris
and no process behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, small_config, write_config

# The faults are POSIX signals (SIGKILL, SIGTERM to a process group), tmpfs mounts and /proc.
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="injects POSIX faults")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )


def _one_error_line(run: subprocess.CompletedProcess, fragment: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], run.stderr
    assert "Traceback" not in run.stderr


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_mode_that_fails_anywhere_is_its_row_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    """LiteRT dying while the first mode is timed (injected: no model makes it fail on
    purpose): the comparison records that mode's one-line reason, removes its files and
    measures the next mode."""
    from generator.cli import main
    from generator.runs import compare

    timed = compare.latency_ms
    calls = []

    def failing(content, sample, runtime):
        calls.append(runtime)
        if len(calls) == 2:  # the first call times the float32 reference, the second int16x8
            raise RuntimeError("injected: the interpreter died\nand said more")
        return timed(content, sample, runtime)

    monkeypatch.setattr(compare, "latency_ms", failing)
    config = write_config(tmp_path, small_config(tmp_path))
    assert main(["compare", str(config), "--modes", "int16x8,full_integer"]) == 0
    assert "int16x8 failed: RuntimeError: injected: the interpreter died" in capsys.readouterr().err
    folder = tmp_path / "out" / "small"
    info = json.loads((folder / "small_compare.json").read_text())
    failed, measured = info["modes"]
    assert failed["error"] == "RuntimeError: injected: the interpreter died"
    assert failed["tflite"] is None and not (folder / "compare" / "int16x8").exists()
    assert measured["error"] is None and (folder / measured["tflite"]).is_file()
    assert f"| int16x8 | failed: {failed['error']} |" in (folder / "small_compare.md").read_text()


def test_an_untrained_model_verifies_at_16_bits(tmp_path):
    """Its activations shrink layer by layer to 1e-18: the 16-bit calibration gave scales too
    small for a ReLU6's bound, and TFLite Micro refused the model. They are widened now, as
    the converter widens 8-bit ranges."""
    config = write_config(tmp_path, small_config(tmp_path))
    run = run_cli("build", str(config), "--set", "quantization.mode=int16x8")
    assert run.returncode == 0, run.stderr
    info = json.loads((tmp_path / "out" / "small" / "small_quantization_info.json").read_text())
    assert info["quantization"]["mode"] == "int16x8" and info["int16_tensors"] > 0
    assert any("constant over the" in warning for warning in info["warnings"])


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    """A small tmpfs at `folder`, or a skip where this machine may not mount one."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root with CAP_SYS_ADMIN: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _started(arguments: list[str], out: Path, staged: str) -> subprocess.Popen:
    """The command running, once its staging folder in `out` holds `staged` (a glob)."""
    run = subprocess.Popen(
        [sys.executable, "-m", "generator", *arguments],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(f".small-{run.pid}-*/{staged}")):
        assert time.monotonic() < deadline and run.poll() is None, f"no {staged} was staged"
        time.sleep(0.05)
    return run


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sweep_killed_outright_leaves_no_worker_and_no_debris(tmp_path):
    """SIGKILL, which no handler sees (the OOM killer, a CI timeout): the pool's workers and
    multiprocessing's resource tracker end with the driver, and the workers' temporary
    builds are removed."""
    config = write_config(tmp_path, small_config(tmp_path))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = [sys.executable, "-m", "generator", "sweep", str(config), "--jobs", "2"]
    command += ["--grid", "model.alpha=0.25,0.5,0.75,1.0"]
    driver = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    deadline = time.monotonic() + 120
    while len(list(temporary.glob("generator-sweep-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # both workers are building
    assert list(temporary.glob("generator-sweep-*")), "no worker started building"
    helpers = _children(driver.pid)
    assert len(helpers) >= 3  # two workers and the resource tracker
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in helpers if _alive(pid)]
    assert not list(temporary.glob("generator-sweep-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_that_dies_mid_variant_costs_that_variant_only(tmp_path):
    """A worker that crashes (SIGSEGV, as a native crash ends it) breaks the process pool: the
    variants not yet built are built again one at a time, and the one whose worker dies again
    is recorded as failed while the others are built."""
    config = write_config(tmp_path, small_config(tmp_path))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = [sys.executable, "-m", "generator", "sweep", str(config), "--jobs", "2"]
    command += ["--grid", "model.alpha=0.25,0.5,0.75"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "TMPDIR": str(temporary)},
        )
    crashed = set()
    deadline = time.monotonic() + 600
    while driver.poll() is None and time.monotonic() < deadline:
        for folder in temporary.glob("generator-sweep-*-a0_5-*"):
            worker = int(folder.name.split("-")[2])
            if worker not in crashed:
                crashed.add(worker)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGSEGV)
        time.sleep(0.1)
    driver.wait(timeout=60)
    err = log.read_text()
    assert driver.returncode == 0, err
    assert len(crashed) == 2  # in the pool of two, then alone
    assert "Traceback" not in err
    info = json.loads((tmp_path / "out" / "small_sweep" / "sweep.json").read_text())
    status = {row["name"]: (row["status"], row["error"]) for row in info["variants"]}
    assert status["a0_25"] == ("ok", None) and status["a0_75"] == ("ok", None)
    assert status["a0_5"][0] == "failed" and "worker process building it died" in status["a0_5"][1]
    assert not list(temporary.glob("generator-sweep-*"))  # the dead workers' builds removed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_build_stopped_while_vela_runs_beside_it_leaves_its_previous_result(tmp_path, signum):
    """Stopped after the conversion, while Vela and the arena search run beside the per-layer
    error: SIGTERM ends in 130 with the staging folder removed and no Vela or search left;
    SIGKILL leaves the staging folder for the next run of the name, and no search."""
    config = write_config(tmp_path, small_config(tmp_path))
    assert run_cli("build", str(config)).returncode == 0
    out = tmp_path / "out"
    previous = _snapshot(out / "small")
    build = _started(["build", str(config)], out, "small.tflite")
    helpers = _children(build.pid)
    build.send_signal(signum)
    _, err = build.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    if signum == signal.SIGTERM:
        assert build.returncode == 130 and "interrupted: nothing was written" in err, err
        assert "Traceback" not in err
        left = [str(p.relative_to(out)) for p in out.glob(".small-*/**/*")]
        assert not list(out.glob(".small-*")), (left, err)  # no staging folder
        assert not [pid for pid in helpers if _alive(pid)]  # no Vela, no arena search
    else:
        searches = [pid for pid in helpers if _alive(pid) and "vela" not in _command(pid)]
        assert not searches  # the arena search died with the build; Vela finishes by itself
    assert _snapshot(out / "small") == previous


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def test_a_resumed_sweep_rebuilds_variants_whose_files_are_cut_short_or_gone(tmp_path):
    config = write_config(tmp_path, small_config(tmp_path))
    grid = ["--grid", "model.alpha=0.25,0.5,0.75"]
    assert run_cli("sweep", str(config), *grid, "--jobs", "2").returncode == 0
    out = tmp_path / "out" / "small_sweep"
    table = (out / "sweep.json").read_text()
    record = out / "a0_25" / "a0_25_quantization_info.json"
    record.write_text(record.read_text()[:100])  # cut short
    (out / "a0_5" / "a0_5.tflite").unlink()  # gone
    kept = (out / "a0_75" / "a0_75.tflite").stat().st_mtime_ns
    run = run_cli("sweep", str(config), *grid, "--jobs", "2")
    assert run.returncode == 0, run.stderr
    assert "a0_75: already built, not rebuilt" in run.stderr
    assert "a0_25: already built" not in run.stderr and "a0_5: already built" not in run.stderr
    assert (out / "a0_75" / "a0_75.tflite").stat().st_mtime_ns == kept
    assert (out / "sweep.json").read_text() == table  # rebuilt, the same figures
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_two_builds_of_one_name_at_once_leave_one_whole_build(tmp_path):
    config = write_config(tmp_path, small_config(tmp_path))
    command = [sys.executable, "-m", "generator", "build", str(config)]
    builds = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for build in builds:
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err
    out = tmp_path / "out"
    assert [p.name for p in out.iterdir()] == ["small"]  # no staging or old folder left
    folder = out / "small"
    info = json.loads((folder / "small_quantization_info.json").read_text())
    assert (
        hashlib.sha256((folder / "small.tflite").read_bytes()).hexdigest()
        == info["model"]["sha256"]
    )


def test_a_comparison_stopped_mid_mode_keeps_the_previous_one(tmp_path):
    config = write_config(tmp_path, small_config(tmp_path))
    modes = ["--modes", "full_integer,float16"]
    assert run_cli("compare", str(config), *modes).returncode == 0
    out = tmp_path / "out"
    previous = _snapshot(out / "small")
    compare = _started(["compare", str(config), *modes], out, "compare/full_integer/*.tflite")
    compare.send_signal(signal.SIGTERM)
    _, err = compare.communicate(timeout=60)
    assert compare.returncode == 130 and "Traceback" not in err, err
    assert [p.name for p in out.iterdir()] == ["small"]  # no staging folder
    assert _snapshot(out / "small") == previous


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ray_worker_killed_mid_variant_costs_that_variant_only(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    config = write_config(tmp_path, small_config(tmp_path))
    # Ray's socket paths live in TMPDIR and may not exceed 107 bytes: a short one.
    temporary = Path(tempfile.mkdtemp(prefix="gf-", dir="/tmp"))
    command = [sys.executable, "-m", "generator", "sweep", str(config), "--backend", "ray"]
    command += ["--jobs", "2", "--grid", "model.alpha=0.25,0.5"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        driver = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "TMPDIR": str(temporary)},
        )
    killed = None
    deadline = time.monotonic() + 600
    while driver.poll() is None and time.monotonic() < deadline:
        for folder in temporary.glob("generator-sweep-*-a0_5-*"):
            if killed is None:
                killed = int(folder.name.split("-")[2])
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    driver.wait(timeout=60)
    err = log.read_text()
    assert killed is not None and driver.returncode == 0, err
    assert "Traceback" not in err
    info = json.loads((tmp_path / "out" / "small_sweep" / "sweep.json").read_text())
    status = {row["name"]: (row["status"], row["error"]) for row in info["variants"]}
    assert status["a0_25"] == ("ok", None)
    assert status["a0_5"][0] == "failed" and "its Ray task failed" in status["a0_5"][1]
    assert not list(temporary.glob("generator-sweep-*"))
    shutil.rmtree(temporary, ignore_errors=True)


def test_a_disk_that_fills_up_stops_every_command_in_one_line(tmp_path):
    """A disk with 64 KiB free under a build and a comparison: build, compare, report and sweep
    each end in one line with exit code 2 (before: a 12-line OSError traceback), and what was
    there stays as it was, with no staging folder and no partial file."""
    with _tmpfs(tmp_path / "disk", "16m") as disk:
        config = write_config(tmp_path, small_config(tmp_path, output={"dir": str(disk)}))
        assert run_cli("build", str(config)).returncode == 0
        assert run_cli("compare", str(config), "--modes", "full_integer").returncode == 0
        previous = _snapshot(disk)
        filler = disk / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        os.truncate(filler, filler.stat().st_size - 64 * 1024)
        for command in (
            ["build", str(config)],
            ["compare", str(config), "--modes", "full_integer"],
            ["report", str(disk / "small")],
            ["sweep", str(config), "--grid", "model.alpha=0.25"],
        ):
            run = run_cli(*command)
            assert run.returncode == 2, (command, run.stderr)
            _one_error_line(run, "no space left on the disk of")
        filler.unlink()
        assert _snapshot(disk) == previous
        assert not list(disk.rglob(".*"))  # no staging folder, no partial file


def test_a_read_only_disk_stops_every_command_in_one_line(tmp_path):
    """Refused before any work where the config names the folder, before writing for report."""
    with _tmpfs(tmp_path / "disk", "16m") as disk:
        config = write_config(tmp_path, small_config(tmp_path, output={"dir": str(disk)}))
        assert run_cli("build", str(config)).returncode == 0
        previous = _snapshot(disk)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for command, fragment in (
            (["build", str(config)], "output.dir: cannot write in"),
            (["compare", str(config), "--modes", "full_integer"], "output.dir: cannot write in"),
            (["sweep", str(config), "--grid", "model.alpha=0.25"], "cannot write in"),
            (["report", str(disk / "small")], "is on a read-only file system"),
        ):
            run = run_cli(*command)
            assert run.returncode == 2, (command, run.stderr)
            _one_error_line(run, fragment)
        assert _snapshot(disk) == previous


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_report_stopped_while_rendering_keeps_the_previous_pages(
    demo_sized_build, tmp_path, signum
):
    folder = tmp_path / "copy"
    folder.mkdir()
    for path in demo_sized_build.glob("default_*"):
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    previous = _snapshot(folder)
    report = subprocess.Popen(
        [sys.executable, "-m", "generator", "report", str(folder)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.6)  # its imports take 0.1 s, drawing the figures about 2 s
    report.send_signal(signum)
    _, err = report.communicate(timeout=60)
    assert report.returncode == (130 if signum == signal.SIGTERM else -signal.SIGKILL), err
    assert "Traceback" not in err
    assert _snapshot(folder) == previous  # not one page half-written or replaced
