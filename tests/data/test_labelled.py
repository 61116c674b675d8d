import numpy as np
import pytest
from PIL import Image

from generator.config.schema import Head
from generator.data.labelled import MISSING, read_labelled
from generator.errors import UserError

HEADS = (Head("shape", 2, ("round", "square")), Head("size", 3, None))


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (6, 6), value).save(path)


def test_csv_manifest_with_blank_cells(tmp_path):
    for index in range(4):
        _image(tmp_path / "img" / f"{index}.png", index * 60)
    (tmp_path / "labels.csv").write_text(
        "path,shape,size\nimg/0.png,square,10\nimg/1.png,round,\nimg/2.png,,2\nimg/3.png,round,1\n"
    )
    data = read_labelled(tmp_path / "labels.csv", HEADS, (8, 8, 1), "train.data")
    assert data.pixels.shape == (4, 8, 8, 1)
    assert data.pixels[3, 0, 0, 0] == 180
    assert data.classes == {"shape": ("round", "square"), "size": ("1", "2", "10")}  # numeric
    assert data.labels.tolist() == [[1, 2], [0, MISSING], [MISSING, 1], [0, 0]]


def test_folder_layout_labels_one_head_per_image(tmp_path):
    _image(tmp_path / "shape" / "round" / "a.png", 10)
    _image(tmp_path / "shape" / "square" / "b.png", 20)
    for size in ("s", "m", "l"):
        _image(tmp_path / "size" / size / f"{size}.png", 30)
    data = read_labelled(tmp_path, HEADS, (8, 8, 3), "train.data")
    assert len(data.pixels) == 5
    assert data.classes["size"] == ("l", "m", "s")
    assert data.labels.tolist() == [
        [0, MISSING],
        [1, MISSING],
        [MISSING, 0],
        [MISSING, 1],
        [MISSING, 2],
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("path,shape,size\nimg/0.png,oval,1\nimg/0.png,round,2\nimg/0.png,round,3\n", "labels"),
        ("path,shape,size\nimg/0.png,round,1\nimg/0.png,square,2\n", "num_classes 3"),
        ("path,shape\nimg/0.png,round\n", r"missing: size"),
        (
            "path,shape,size\nimg/9.png,round,1\nimg/0.png,square,2\nimg/0.png,round,3\n",
            "image .*9.png does not exist: fix or remove it",
        ),
    ],
)
def test_mismatches_are_user_errors(tmp_path, rows, message):
    _image(tmp_path / "img" / "0.png", 0)
    (tmp_path / "labels.csv").write_text(rows)
    with pytest.raises(UserError, match=message):
        read_labelled(tmp_path / "labels.csv", HEADS, (8, 8, 1), "train.data")


def test_folder_naming_no_head_is_an_error(tmp_path):
    _image(tmp_path / "colour" / "red" / "a.png", 0)
    with pytest.raises(UserError, match="folders colour that name no head"):
        read_labelled(tmp_path, HEADS, (8, 8, 1), "train.data")


def test_subset_keeps_rows_together(tmp_path):
    for index in range(3):
        _image(tmp_path / "size" / str(index) / f"{index}.png", index * 100)
    data = read_labelled(tmp_path, (Head("size", 3, None),), (4, 4, 1), "train.data")
    part = data.subset(np.array([2, 0]))
    assert part.labels[:, 0].tolist() == [2, 0]
    assert part.pixels[:, 0, 0, 0].tolist() == [200, 0]


def test_manifest_saved_with_a_byte_order_mark_reads(tmp_path):
    _image(tmp_path / "img" / "0.png", 0)
    _image(tmp_path / "img" / "1.png", 0)
    (tmp_path / "labels.csv").write_text(
        "\ufeffpath,shape\nimg/0.png,round\nimg/1.png,square\n", encoding="utf-8"
    )
    data = read_labelled(tmp_path / "labels.csv", HEADS[:1], (8, 8, 1), "train.data")
    assert data.labels[:, 0].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "labels.csv is empty: its first line must be path,shape"),
        (b"path,shape\n", "no labelled images in"),
        (b"path,shape\nimg/0.png,round\nimg/\xe9.png,square\n", "not UTF-8 text .byte 31."),
        (b"path,shape,shape\nimg/0.png,round,round\n", "repeats the column 'shape'"),
        (b"path,shape\nimg/0.png,round\n ,square\n", "labels.csv row 3 has no path"),
        (b"shape,path\nround,img/0.png\nsquare\n", "labels.csv row 3 has no path"),
    ],
)
def test_manifest_mistakes_name_the_file_and_row(tmp_path, content, message):
    _image(tmp_path / "img" / "0.png", 0)
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_labelled(tmp_path / "labels.csv", HEADS[:1], (8, 8, 1), "train.data")


def test_an_image_too_large_to_decode_is_a_user_error(tmp_path, monkeypatch):
    """Calibration skips such an image; a labelled set, where every image counts, refuses it
    (it used to escape as Pillow's DecompressionBombError)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the error comes above twice this
    _image(tmp_path / "shape" / "round" / "a.png", 0)
    (tmp_path / "shape" / "square").mkdir()
    Image.new("L", (20, 20)).save(tmp_path / "shape" / "square" / "b.png")
    with pytest.raises(UserError, match=r"train.data: image .*b.png is too large to decode"):
        read_labelled(tmp_path, HEADS[:1], (8, 8, 1), "train.data")


def test_a_split_decodes_each_part_alone_as_the_whole_set_would(tmp_path):
    """A build splits the list of images before decoding, so the whole set is never in memory
    beside its parts; each part is what decoding everything and taking its rows gives."""
    from generator.data.labelled import decode_labelled, list_labelled
    from generator.model.train import split_validation, validation_rows

    rows = ["path,shape,size"]
    for index in range(10):
        _image(tmp_path / "img" / f"{index}.png", index * 20)
        rows.append(f"img/{index}.png,{('round', 'square')[index % 2]},{index % 3}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    whole = read_labelled(tmp_path / "labels.csv", HEADS, (8, 8, 1), "train.data")
    listed = list_labelled(tmp_path / "labels.csv", HEADS, "train.data")
    training_rows, held_rows = validation_rows(10, 0.3, seed=0)
    assert sorted([*training_rows, *held_rows]) == list(range(10)) and len(held_rows) == 3
    seen = []
    parts = [
        decode_labelled(listed, (8, 8, 1), rows, lambda *done: seen.append(done))
        for rows in (training_rows, held_rows)
    ]
    expected = split_validation(whole, 0.3, seed=0)
    for part, reference in zip(parts, expected, strict=True):
        np.testing.assert_array_equal(part.pixels, reference.pixels)
        np.testing.assert_array_equal(part.labels, reference.labels)
    assert seen == [(7, 7), (3, 3)]  # progress at the end of each part
