"""Where a pipeline keeps its files: raw downloads, staged, published and quarantined data.

Every folder a workspace holds can hold patient data (timelines, rejects, training frames, the
online store), so each is created private (0700) whatever the process umask.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ingestion.core.errors import InputError


@dataclass(frozen=True)
class Workspace:
    """A folder holding one deployment's data and its Feast registry and online store.

    Layout: ``raw/`` (downloads and inputs), ``staging/`` (built, not yet validated),
    ``published/`` (served by Feast), ``quarantine/`` (failed validation, with reports),
    ``feast/`` (feature_store.yaml, registry, SQLite online store), ``gx/`` (Great
    Expectations project and Data Docs), ``outputs/``. The root, when the workspace creates it,
    and every one of these folders are private to the owner (0700), whatever the umask; a
    folder an older version left open is closed on first use.

    Examples
    --------
    >>> ws = Workspace("/tmp/sdoh-example")
    >>> ws.published_dir("acs_tract").name
    'acs_tract'
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]):
        object.__setattr__(self, "root", Path(root).resolve())

    def _dir(self, name: str) -> Path:
        return private_dir(self.root / name)

    @property
    def raw(self) -> Path:
        """Inputs and downloads, as received."""
        return self._dir("raw")

    @property
    def staging(self) -> Path:
        """Datasets built but not yet validated."""
        return self._dir("staging")

    @property
    def quarantine(self) -> Path:
        """Datasets that failed validation, each with its report."""
        return self._dir("quarantine")

    @property
    def feast(self) -> Path:
        """Feast's feature_store.yaml, registry and online store."""
        return self._dir("feast")

    @property
    def gx(self) -> Path:
        """The Great Expectations project (suites, results, Data Docs)."""
        return self._dir("gx")

    @property
    def outputs(self) -> Path:
        """Training frames and reports written for users."""
        return self._dir("outputs")

    def published_dir(self, dataset: str) -> Path:
        """The folder of ``dataset``'s partition files (``<vintage>/<state>.parquet``).

        A link to the published version (see `ingestion.gate.publish`), swapped atomically by each
        publish; read through it, or resolve it once for a view no publish can change.
        """
        return self._dir("published") / dataset

    def published_glob(self, dataset: str) -> str:
        """The glob Feast and DuckDB read ``dataset`` through."""
        return str(self.published_dir(dataset) / "**" / "*.parquet")

    def require_existing(self) -> Workspace:
        """The workspace itself if its folder exists: check before reading, so nothing is created.

        Raises
        ------
        InputError
            If the folder does not exist: one line naming it and what to do.

        Examples
        --------
        >>> Workspace("/no/such/folder").require_existing()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ingestion.core.errors.InputError: no workspace at /no/such/folder: run `sdoh demo` ...
        """
        if not self.root.is_dir():
            raise InputError(f"no workspace at {self.root}: run `sdoh demo` to build the demo "
                             "there, or pass --workspace (or set SDOH_WORKSPACE) to a workspace "
                             "that `sdoh ingest` or `sdoh link` wrote")
        return self

    def is_published(self, dataset: str) -> bool:
        """Whether ``dataset`` has any published partition."""
        return any(self.published_dir(dataset).glob("**/*.parquet"))


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` readable by its owner only (0700), whatever the umask.

    Missing parents are created 0700 as well; an existing ``path`` with group or other
    permission bits is closed to 0700 (existing parents are left as they are).

    Examples
    --------
    >>> import stat, tempfile
    >>> folder = private_dir(Path(tempfile.mkdtemp()) / "a" / "b")
    >>> [oct(stat.S_IMODE(p.stat().st_mode)) for p in (folder.parent, folder)]
    ['0o700', '0o700']
    """
    created = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(created):
        folder.mkdir(mode=0o700, exist_ok=True)
    for folder in {path, *created}:
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            folder.chmod(0o700)
    return path
