"""Publishing: results appear whole or not at all.

Every run writes into a hidden staging folder beside its final place and moves it there only
when it has succeeded, so a failed or interrupted run leaves nothing half-written and an earlier
good result stays until then. What killed runs leave behind is undone by the next run of the
same name. No TensorFlow here: the sweep's driver publishes what its workers built.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from generator.errors import UserError
from generator.support.files import cannot_write, folder_size, is_write_failure
from generator.support.processes import is_running

# Where a comparison puts its modes' files, inside the build's folder (`generator.runs.compare`).
COMPARISON_FOLDER = "compare"


@contextlib.contextmanager
def staged(output_dir: Path, name: str) -> Iterator[Path]:
    """A new staging folder for a run of `name` in `output_dir`, after undoing what killed runs
    of that name left there (`clear_debris`). Whatever is still in it when the block ends,
    because the block failed or was interrupted, or left something behind, is removed; a folder
    published with `publish_build` has already been moved away. A disk that fills up, or a
    folder that refuses the run's files, ends the run in one line (`UserError`)."""
    staging = None
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        clear_debris(output_dir, name)
        staging = staging_folder(output_dir, name)
        yield staging
    except OSError as error:
        if not is_write_failure(error, output_dir.resolve()):
            raise
        written = None
        if staging is not None:  # measured, then removed: the space it took is free again
            written = folder_size(staging)
            shutil.rmtree(staging, ignore_errors=True)
            staging = None
        raise UserError(cannot_write(error, output_dir, written)) from None
    finally:
        if staging is not None:
            _remove(staging)


def _remove(folder: Path) -> None:
    """Remove `folder`, trying again while a file appears in it as it is removed (a process
    the run started, ending, may still be closing a file there)."""
    for _ in range(5):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.2)


def staging_folder(output_dir: Path, name: str) -> Path:
    """A new hidden folder in `output_dir` for a run of `name`, which `clear_debris` removes
    if the run is killed."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=output_dir))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    return staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def clear_debris(folder: Path, name: str) -> None:
    """Undo what killed builds of `name` left in `folder`.

    A build killed with SIGKILL cannot clean up: its staging folder `.<name>-<pid>-<random>`
    stays. Those whose process is gone are removed (a running build's are not). A build killed
    while publishing may have moved the previous result to `.<name>-old` without putting the new
    one in place: the previous result is restored, as is the previous `compare/` folder of a
    comparison killed while publishing (`generator.runs.compare`).
    """
    staging = re.compile(rf"\.{re.escape(name)}-(\d+)-\w+")
    for path in folder.iterdir():
        match = staging.fullmatch(path.name)
        if match and path.is_dir() and not is_running(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)
    final, old = folder / name, folder / f".{name}-old"
    if old.is_dir() and not final.exists():
        old.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    comparison, old_comparison = final / COMPARISON_FOLDER, final / f".{COMPARISON_FOLDER}-old"
    if old_comparison.is_dir() and not comparison.exists():
        old_comparison.rename(comparison)
    shutil.rmtree(old_comparison, ignore_errors=True)


def publish_build(staging: Path, final: Path) -> None:
    """Move the finished staging folder to `final`, replacing an earlier build. What `compare`
    wrote there stays: it is a run of its own (`generator.runs.compare`), not part of the build."""
    if final.exists():
        for path in final.iterdir():
            if path.name == COMPARISON_FOLDER or path.name.startswith(f"{final.name}_compare."):
                path.rename(staging / path.name)
        old = final.with_name(f".{final.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)


def publish_comparison(staging: Path, final: Path, written: list[Path]) -> None:
    """Put `compare/` and the compare report into `final`, beside a build's files, replacing
    an earlier comparison; a build in `final` is left as it is. `written` names the report's
    files in `staging`."""
    final.mkdir(exist_ok=True)
    old = final / f".{COMPARISON_FOLDER}-old"
    shutil.rmtree(old, ignore_errors=True)
    if (final / COMPARISON_FOLDER).exists():
        (final / COMPARISON_FOLDER).rename(old)
    if (staging / COMPARISON_FOLDER).exists():
        (staging / COMPARISON_FOLDER).rename(final / COMPARISON_FOLDER)
    for path in written:
        if path.parent == staging:
            os.replace(path, final / path.name)
    shutil.rmtree(old, ignore_errors=True)
