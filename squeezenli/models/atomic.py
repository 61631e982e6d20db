"""Write files so that a reader sees either nothing or the whole file, never a torn one, and
so that what a killed writer leaves behind is recognised and removed by the next run."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Temporary names carry the writer's process id: `.NAME.PID.RANDOM.tmp`, `.ready-PID-RANDOM`.
_TEMP = re.compile(r"^\..*\.(\d+)\.[^.]+\.tmp$|^\.ready-(\d+)-")
# What this process is writing now: removed by remove_own_temps when a signal stops it at
# once (cli/signals.py), so that not even a dead writer's temporary is left for the next run.
_writing: set[Path] = set()


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside dest; on success it is fsynced and renamed onto dest.

    On any exception (Ctrl-C included) the temporary file is removed and dest is untouched;
    after kill -9, remove_dead_temps finds it by the process id in its name.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    _writing.add(tmp_path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _writing.discard(tmp_path)


@contextlib.contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A temporary folder in parent, named so that remove_dead_temps knows its writer, and
    removed with what is left in it when the context ends."""
    scratch = Path(tempfile.mkdtemp(prefix=f".ready-{os.getpid()}-", dir=parent))
    _writing.add(scratch)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _writing.discard(scratch)


def remove_own_temps() -> None:
    """Remove every temporary this process is writing (the process is about to end without
    unwinding: a signal outside a pass over rows)."""
    for path in list(_writing):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_dead_temps(folder: Path) -> None:
    """Remove temporary files and folders of writers that no longer run (killed mid-write);
    those of live processes are left alone. (Process ids are this machine's: a cache shared
    over a network filesystem keeps other machines' temporaries until they end.)"""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _TEMP.match(entry.name)
        if not found or _alive(int(found.group(1) or found.group(2))):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True
