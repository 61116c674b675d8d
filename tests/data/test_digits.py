import csv

from generator.cli import main
from generator.config.schema import Head
from generator.data.labelled import read_labelled


def test_export_writes_both_layouts_with_three_heads(tmp_path, capsys):
    assert main(["export-digits", str(tmp_path), "--folders"]) == 0
    assert "train.csv" in capsys.readouterr().out
    with (tmp_path / "train.csv").open() as handle:
        train = list(csv.DictReader(handle))
    with (tmp_path / "test.csv").open() as handle:
        test = list(csv.DictReader(handle))
    assert (len(train), len(test)) == (1438, 359)
    assert not {r["path"] for r in train} & {r["path"] for r in test}
    for row in train[:50]:
        digit = int(row["digit"])
        assert row["parity"] == ("odd" if digit % 2 else "even")
        assert row["high"] == ("high" if digit >= 5 else "low")
    heads = (Head("digit", 10, None), Head("parity", 2, None), Head("high", 2, None))
    from_csv = read_labelled(tmp_path / "test.csv", heads, (8, 8, 1), "evaluation.data")
    from_folders = read_labelled(tmp_path / "folders" / "test", heads, (8, 8, 1), "evaluation.data")
    assert len(from_folders.pixels) == 3 * len(from_csv.pixels)  # one copy per head
    assert from_csv.classes == from_folders.classes
    assert from_csv.classes["digit"] == tuple(str(d) for d in range(10))
    assert sorted((from_csv.labels[:, 0] >= 0).tolist()) == [True] * 359


def test_the_committed_demo_data_is_this_export(tmp_path):
    from conftest import REPO

    assert main(["export-digits", str(tmp_path)]) == 0
    committed = REPO / "representative_data" / "digits"
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / name).read_text() == (committed / name).read_text()
    for path in sorted((tmp_path / "images").rglob("*.png"))[::97]:
        relative = path.relative_to(tmp_path)
        assert path.read_bytes() == (committed / relative).read_bytes()
