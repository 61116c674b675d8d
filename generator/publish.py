"""Publishing: results appear whole or not at all.

Every run writes into a hidden staging folder beside its final place and moves it there only
when it has succeeded, so a failed or interrupted run leaves nothing half-written and an earlier
good result stays until then. What killed runs leave behind is undone by the next run of the
same name. No TensorFlow here: the sweep's driver publishes what its workers built.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path


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
    comparison killed while publishing (`generator.compare`).
    """
    staging = re.compile(rf"\.{re.escape(name)}-(\d+)-\w+")
    for path in folder.iterdir():
        match = staging.fullmatch(path.name)
        if match and path.is_dir() and not _running(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)
    final, old = folder / name, folder / f".{name}-old"
    if old.is_dir() and not final.exists():
        old.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    comparison, old_comparison = final / "compare", final / ".compare-old"
    if old_comparison.is_dir() and not comparison.exists():
        old_comparison.rename(comparison)
    shutil.rmtree(old_comparison, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def publish_build(staging: Path, final: Path) -> None:
    """Move the finished staging folder to `final`, replacing an earlier build. What `compare`
    wrote there stays: it is a run of its own (`generator.compare`), not part of the build."""
    if final.exists():
        for path in final.iterdir():
            if path.name == "compare" or path.name.startswith(f"{final.name}_compare."):
                path.rename(staging / path.name)
        old = final.with_name(f".{final.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
