"""Files written all or nothing: a temporary file fsynced and renamed, a link swapped in one rename.

Free of Great Expectations and of the publishing gate, so retrieval, the Feast store and the
linking code can write files safely without importing the validation stack. Every file
written here may hold patient data: it is created 0600 whatever the umask.

Examples
--------
>>> import tempfile
>>> target = Path(tempfile.mkdtemp()) / "frame.parquet"
>>> write_atomic(target, lambda handle: handle.write(b"PAR1"))
>>> target.read_bytes()
b'PAR1'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["fsync_dir", "point_link", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where unsupported.

    Examples
    --------
    >>> import tempfile
    >>> fsync_dir(Path(tempfile.mkdtemp()))
    """
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], object], *, mode: int = 0o600) -> None:
    """Write a file privately and atomically: all of it or nothing, never group/other-readable.

    ``write(handle)`` writes to a temporary file beside ``path`` that is created with
    ``mode`` (default 0600, owner only) whatever the process umask; the file is fsynced and
    renamed over ``path``, and the folder fsynced. On any error the temporary file is removed
    and ``path`` is left as it was. Use it for every file that can hold patient data.

    Parameters
    ----------
    path : pathlib.Path
        The file to write; its folder must exist.
    write : callable
        Called with the open binary handle.
    mode : int, optional
        Permission bits of the file, 0o600 by default.

    Examples
    --------
    >>> import stat, tempfile
    >>> target = Path(tempfile.mkdtemp()) / "rows.csv"
    >>> write_atomic(target, lambda handle: handle.write(b"patient_id\\n"))
    >>> oct(stat.S_IMODE(target.stat().st_mode))
    '0o600'
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; fchmod is exact whatever the umask
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target`` in one atomic rename.

    The link is relative (the workspace can move) and replaces whatever ``link`` was, file
    or link, so a reader finds the old target or the new one, never nothing. A real folder
    at ``link`` (a workspace from before versions) cannot be replaced in one rename: it is
    set aside as ``.<name>.plain`` for the instant between two renames, then removed. The
    caller must be the only writer of ``link`` (a lock); a killed call leaves at most the
    hidden ``.<name>.link`` or ``.<name>.plain`` beside it (`publish` cleans both up).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "run1.csv").write_text("row")
    3
    >>> point_link(folder / "latest.csv", folder / "run1.csv")
    >>> (folder / "latest.csv").read_text()
    'row'
    """
    fresh = link.with_name(f".{link.name}.link")
    fresh.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), fresh)
    aside = link.with_name(f".{link.name}.plain") if link.is_dir() and not link.is_symlink() \
        else None
    if aside is not None:
        os.rename(link, aside)
    os.replace(fresh, link)
    fsync_dir(link.parent)
    if aside is not None:
        shutil.rmtree(aside)
