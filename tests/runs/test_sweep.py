"""`generator sweep`: real builds of every grid combination, ranked, resumable, the same through
Ray as through the local process pool."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import (
    REPO,
    evaluated_digits_config,
    needs_chromium,
    open_in_chromium,
    small_config,
    write_config,
)

from generator.runs.sweep import parse_grid, variant_name

# 512 KiB of flash holds an alpha 0.25 model (about 250 KB) but not an alpha 0.5 one (about
# 900 KB): with require_fit, those variants fail and the sweep goes on.
BOARDS = {
    "small_flash": {
        "accelerator": "ethos-u55-128",
        "clock_mhz": 400,
        "sram": {"kib": 1024, "mb_per_s": 3200},
        "flash": {"kib": 512, "mb_per_s": 100},
    }
}
GRID = ["--grid", "model.alpha=0.25,0.5", "--grid", "model.input_shape=[32,32,3],[40,40,3]"]
NAMES = ["a0_25-32x32x3", "a0_25-40x40x3", "a0_5-32x32x3", "a0_5-40x40x3"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], capture_output=True, text=True, cwd=REPO
    )


def sweep_config(tmp_path) -> dict:
    return small_config(
        tmp_path,
        vela={"targets": [{"board": "corstone_300"}, {"board": "small_flash"}]},
        boards=BOARDS,
        output={"dir": str(tmp_path / "out"), "require_fit": True},
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    config = write_config(folder, sweep_config(folder))
    run = run_cli("sweep", str(config), *GRID, "--jobs", "2")
    assert run.returncode == 0, run.stderr
    out = folder / "out" / "small_sweep"
    return config, out, json.loads((out / "sweep.json").read_text()), run


def test_every_variant_is_a_build_and_failures_are_recorded(sweep):
    _, out, info, run = sweep
    assert info["schema_version"] == 3 and info["name"] == "small"
    assert info["grid"] == {
        "model.alpha": [0.25, 0.5],
        "model.input_shape": [[32, 32, 3], [40, 40, 3]],
    }
    rows = {row["name"]: row for row in info["variants"]}
    assert sorted(rows) == NAMES
    for name in NAMES[:2]:
        row = rows[name]
        assert row["status"] == "ok" and row["error"] is None
        assert (out / row["path"] / f"{name}_report.md").is_file()  # a build like any other
        built = json.loads((out / name / f"{name}_quantization_info.json").read_text())
        assert built["model"]["input_shape"] == row["settings"]["model.input_shape"]
        assert built["model"]["alpha"] == row["settings"]["model.alpha"] == 0.25
    for name in NAMES[2:]:
        row = rows[name]
        assert row["status"] == "failed" and row["tflite_bytes"] is None
        assert "small_flash" in row["error"] and "does not fit" in row["error"]
        assert not (out / name).exists()  # nothing half-written
        assert f"{name}: failed: " in run.stderr
    # one progress line per variant as it finishes, with the time left until the last
    lines = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all("s left)" in line for line in lines[:-1])
    # quiet: the header, the progress lines and the closing line, no engine logs
    others = [line for line in run.stderr.splitlines() if line not in lines]
    assert len(others) == 2 and others[0].startswith("generator ") and others[1].startswith("done")


def test_figures_are_read_from_each_variant(sweep):
    _, out, info, _ = sweep
    for row in info["variants"]:
        if row["status"] != "ok":
            continue
        folder = out / row["path"]
        name = row["name"]
        assert row["tflite_bytes"] == (folder / f"{name}.tflite").stat().st_size
        built = json.loads((folder / f"{name}_quantization_info.json").read_text())
        assert row["tflm_arena_bytes"] == built["tflm"]["arena_bytes"]
        assert row["micro_runtime"] == built["tflm"]["runtime"]
        assert set(row["targets"]) == {"corstone_300", "small_flash"}
        for key, target in row["targets"].items():
            board = built["boards"][key]
            # the fastest placement that fits, from its own Vela summary
            fitting = [p for p in board["placements"] if p["fits"]]
            fastest = min(fitting, key=lambda p: p["inference_time_ms"])
            assert target["placement"] == fastest["memory_mode"] and target["fits"] is True
            (summary,) = (folder / fastest["folder"]).glob(f"{name}_summary_*.csv")
            with summary.open() as handle:
                vela = {k.strip(): v.strip() for k, v in next(csv.DictReader(handle)).items()}
            assert target["inference_time_ms"] == pytest.approx(float(vela["inference_time"]) * 1e3)
            compiled = folder / fastest["folder"] / f"{name}_vela.tflite"
            assert target["compiled_bytes"] == compiled.stat().st_size
            encoded = int(float(vela["total_npu_encoded_weights"]))
            assert target["encoded_weight_bytes"] == encoded
            assert target["placements_ms"] == {
                p["memory_mode"]: p["inference_time_ms"] for p in board["placements"]
            }
            assert target["sram_kib"] * 1024 == fastest["sram_needed_bytes"]
        assert row["accuracy"] is None  # untrained: fidelity instead
        assert set(row["fidelity"]) == {"object", "light"}


def test_variants_are_ranked_and_the_pareto_front_marked(sweep):
    _, out, info, _ = sweep
    ok = [row for row in info["variants"] if row["status"] == "ok"]
    assert [row["status"] for row in info["variants"]] == ["ok", "ok", "failed", "failed"]

    def worst(row):  # untrained: the slowest target's latency and the largest SRAM need
        targets = row["targets"].values()
        return (max(t["inference_time_ms"] for t in targets), max(t["sram_kib"] for t in targets))

    for row in ok:
        dominated = any(
            all(a <= b for a, b in zip(worst(o), worst(row), strict=True))
            and worst(o) != worst(row)
            for o in ok
        )
        assert row["pareto"] is not dominated
    assert any(row["pareto"] for row in ok)
    assert worst(ok[0]) <= worst(ok[1])  # both fit everywhere: the faster first
    small = ok[0]
    with (out / "sweep.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["name"] for r in table] == [r["name"] for r in info["variants"]]
    assert table[0]["corstone_300.placement"] == small["targets"]["corstone_300"]["placement"]
    assert table[0]["pareto"] == "True" and table[2]["error"] == info["variants"][2]["error"]
    markdown = (out / "sweep.md").read_text()
    assert f"| ★ | `{small['name']}` |" in markdown  # the first is never dominated
    assert "## Failed" in markdown and NAMES[3] in markdown


def test_an_interrupted_sweep_resumes_without_rebuilding(sweep):
    config, out, info, _ = sweep
    kept = out / NAMES[0] / f"{NAMES[0]}.tflite"
    before = kept.stat().st_mtime_ns
    rebuilt = out / NAMES[1]
    shutil.rmtree(rebuilt)  # as if the sweep had been stopped before this variant finished
    run = run_cli("sweep", str(config), *GRID, "--jobs", "2")
    assert run.returncode == 0, run.stderr
    assert f"{NAMES[0]}: already built, not rebuilt" in run.stderr
    assert f"{NAMES[1]}: already built" not in run.stderr and rebuilt.is_dir()
    assert kept.stat().st_mtime_ns == before
    # the same config gives the same figures, rebuilt or not
    assert json.loads((out / "sweep.json").read_text()) == info


def test_a_stopped_sweep_keeps_what_it_built_and_leaves_no_debris(tmp_path):
    config = write_config(tmp_path, sweep_config(tmp_path))
    temporary = Path(tempfile.gettempdir())
    before = set(temporary.glob("generator-sweep-*"))
    command = [sys.executable, "-m", "generator", "sweep", str(config), *GRID, "--jobs", "2"]
    sweep = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO)
    first = sweep.stderr.readline()
    while not first.startswith("[1/4]"):
        assert first, "the sweep ended before its first variant"
        first = sweep.stderr.readline()
    sweep.send_signal(signal.SIGTERM)
    rest = sweep.stderr.read()
    assert sweep.wait(timeout=60) == 130, rest
    assert "interrupted: the variants built so far are kept" in rest
    assert "Traceback" not in rest and "warn" not in rest.lower()
    out = tmp_path / "out" / "small_sweep"
    name = first.split("]")[1].split(":")[0].strip()
    built = [] if ": failed: " in first else [name]
    assert [p.name for p in out.iterdir()] == built  # no staging folder, no sweep.json yet
    for name in built:
        assert (out / name / f"{name}_quantization_info.json").is_file()
    assert set(temporary.glob("generator-sweep-*")) == before  # the workers cleaned up


@pytest.fixture(scope="module")
def trained_sweep_config(digits_model_weights, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    config = evaluated_digits_config(
        folder, digits_model_weights, vela={"targets": [{"board": "corstone_300"}]}
    )
    return write_config(folder, config), folder


def test_ray_gives_the_same_sweep_as_the_local_pool(trained_sweep_config):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    config, folder = trained_sweep_config
    grid = ["--grid", "quantization.per_channel=true,false"]
    results = {}
    for backend in ("local", "ray"):
        out = folder / backend
        run = run_cli("sweep", str(config), *grid, "--backend", backend, "--output-dir", str(out))
        assert run.returncode == 0, run.stderr
        assert "Ray" not in run.stderr.replace("local Ray instance", "")  # Ray's logs muted
        results[backend] = (out / "small_sweep" / "sweep.json").read_text()
    assert results["ray"] == results["local"]
    info = json.loads(results["ray"])
    assert [row["status"] for row in info["variants"]] == ["ok", "ok"]
    for row in info["variants"]:
        built = json.loads(
            (
                folder / "ray/small_sweep" / row["name"] / f"{row['name']}_quantization_info.json"
            ).read_text()
        )
        heads = built["accuracy"]["heads"]
        assert row["accuracy"] == {h: heads[h]["quantized_top1"] for h in ("digit", "parity")}


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["--grid", "model.alfa=0.25,0.5"], "did you mean 'alpha'"),
        (["--grid", "model.alpha=0.25,big"], "model.alpha"),
        (["--grid", "model.alpha"], "expected KEY=VALUE"),
        (["--grid", "model.alpha=0.25,,0.5"], "empty value"),
        (["--grid", "model.alpha=0.25", "--grid", "model.alpha=0.5"], "given twice"),
        (["--grid", "model.alpha=0.5,0.5"], "listed twice"),
        ([], "no --grid"),
        (["--grid", "model.alpha=0.25", "--ray-address", "head:6379"], "--backend ray"),
        (["--grid", "model.alpha=0.25", "--jobs", "0"], "--jobs 0"),
    ],
)
def test_bad_grids_are_refused_before_any_work(tmp_path, grid, message):
    config = write_config(tmp_path, sweep_config(tmp_path))
    run = run_cli("sweep", str(config), *grid)
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_grid_values_are_yaml_split_outside_brackets():
    grid = parse_grid(["model.input_shape=[64, 64, 3],[96,96,1]", "model.backbone=mobilenet_v2"])
    assert grid == {
        "model.input_shape": [[64, 64, 3], [96, 96, 1]],
        "model.backbone": ["mobilenet_v2"],
    }
    settings = {
        "model.backbone": "mobilenet_v2",
        "model.alpha": 0.35,
        "model.input_shape": [96, 96, 1],
    }
    assert variant_name(settings) == "mobilenet_v2-a0_35-96x96x1"
    assert variant_name({"quantization.per_channel": False}) == "per_channel_False"


@needs_chromium
def test_the_sweep_page_opens_offline_and_shows_every_variant(sweep, tmp_path):
    _, out, info, _ = sweep
    text, svgs = open_in_chromium(out / "sweep.html", tmp_path / "sweep.png")
    assert svgs == 1  # the Pareto plot
    for row in info["variants"]:
        assert row["name"] in text
        if row["status"] == "ok":
            target = row["targets"]["corstone_300"]
            assert (
                f"{target['inference_time_ms']:.3f} ms, SRAM {target['sram_kib']:.1f} KiB" in text
            )
        else:
            assert row["error"] in text


def test_report_renders_a_sweep_again_from_its_json(sweep):
    out = sweep[1]
    pages = {name: (out / name).read_text() for name in ("sweep.csv", "sweep.md", "sweep.html")}
    (out / "sweep.md").unlink()
    run = run_cli("report", str(out))
    assert run.returncode == 0, run.stderr
    assert {name: (out / name).read_text() for name in pages} == pages  # the same, from the JSON


def test_a_sweep_record_from_before_weight_bytes_is_upgraded(sweep, tmp_path):
    """A version-2 sweep.json (no encoded weight bytes, one latency per target) still renders:
    those cells are left out."""
    out = tmp_path / "old_sweep"
    shutil.copytree(sweep[1], out)
    info = json.loads((out / "sweep.json").read_text())
    for row in info["variants"]:
        for target in row["targets"].values():
            del target["encoded_weight_bytes"], target["placements_ms"]
    (out / "sweep.json").write_text(json.dumps({**info, "schema_version": 2}))
    run = run_cli("report", str(out))
    assert run.returncode == 0, run.stderr
    assert "B encoded" not in (out / "sweep.md").read_text()
    assert "B encoded" in (sweep[1] / "sweep.md").read_text()
