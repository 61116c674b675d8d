"""Reading a `.keras` model file, for `model.path` (generator/model/build.py) and
`model.pretrained` (generator/model/pretrained.py): Keras's own errors for a file that is not
one mislead ("File not found" for a corrupt file) or are a bare KeyError, so the archive is
checked first and every failure becomes one line under the config field that named the file.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import keras

from generator.errors import UserError
from generator.support.text import first_line


def load_keras_file(path: Path, field: str) -> keras.Model:
    """The model in `path`, uncompiled, or a UserError under `field` (e.g. `model.path`)."""
    _check_keras_archive(path, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise UserError(
            f"{field}: cannot load {path} ({first_sentence(str(error))}): save it again "
            "with model.save, and register custom layers with "
            "keras.saving.register_keras_serializable"
        ) from None


def _check_keras_archive(path: Path, field: str) -> None:
    """A .keras file is a zip holding config.json."""
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"{field}: {path} is not a Keras archive (not a zip file: corrupt, or saved in "
            "another format): save the model with model.save('name.keras')"
        )
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise UserError(
                f"{field}: {path} is a zip file but no Keras model (no config.json): save "
                "the model with model.save('name.keras')"
            )


def first_sentence(text: str) -> str:
    """Keras's errors run on for sentences after the one that says what went wrong."""
    return first_line(text).split(". ")[0]
