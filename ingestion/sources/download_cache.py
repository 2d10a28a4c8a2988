"""Download files into a verified, resumable local cache: boundary zips and publisher files alike.

`fetch_files` fetches a list of `CacheTarget` (a URL, a check of the complete file, the facts to
record, optionally an expected SHA-256) and returns their local paths. `download_boundaries`
(TIGER zips) and the publisher data files (CSV, XLSX, ZIP) go through it.

**Cache.** Files land under ``cache_dir`` mirroring the URL: ``{cache_dir}/{host}/{path}`` (the
port is left out, so a local test server can change port). Beside each file a manifest
``<file>.json`` records ``format``, ``url``, ``size``, ``sha256``, ``downloaded_at`` (UTC),
``etag`` and ``last_modified``, plus the target's ``describe`` and what its ``check`` returned
(e.g. a zip's ``members``). A file whose SHA-256 matches its manifest (and the target's
expected digest, if any) is used without any HTTP request; one that does not (corrupted,
truncated, replaced by hand, from another URL) is downloaded again with a warning.

**Verification.** The body's length is checked against ``Content-Length`` (or
``Content-Range``), then the target's ``check`` runs on the complete file (`check_zip`: the
members' CRCs; `check_not_html`: not empty, not an HTML error page) and, when the target has
one, its expected SHA-256. Only then is the manifest written and the file renamed into place
(atomically). A file that fails its check is discarded and fetched again (a proxy or mirror
may have altered it); one whose digest differs from the expected one is refused at once.

**Resume and retries.** A download goes to ``<file>.part`` (its response's validators in
``<file>.part.json``); after a dropped connection the next attempt (in this call or a later one)
asks for the rest with ``Range: bytes=N-`` and ``If-Range`` (the first response's ETag or
Last-Modified, so a file changed on the server is not spliced). A ``206`` appends, a ``200``
starts again from the first byte, a ``416`` discards the part. HTTP 429 and 5xx, timeouts and
dropped connections are retried by the shared `ingestion.sources.http.RetryPolicy`; an attempt
that brought new bytes does not use up a retry. HTTP 404 and other 4xx fail at once.

**Concurrency.** Files download on a pool of ``max_workers`` threads, each with its own
`requests.Session`, with a tqdm bar over files; one error lists every file that failed.

Examples
--------
``tiger_url`` is a local file server; a plain data file is checked with `check_not_html`:

>>> from ingestion.sources.http import RetryPolicy, Service
>>> target = CacheTarget(url=f"{tiger_url}/TIGER2020/BG/tl_2020_99_bg.zip", check=check_zip,
...                      describe={"source": "demo"})
>>> [path] = fetch_files([target], cache_dir=scratch.root / "cache",
...                      retry=RetryPolicy(timeout=30.0, max_retries=2, backoff=1.0,
...                                        max_delay=10.0),
...                      service=Service(name="the demo server", url_option="base_url="),
...                      error=SdohError, progress=False)
>>> path.relative_to(scratch.root / "cache").as_posix()
'127.0.0.1/geo/tiger/TIGER2020/BG/tl_2020_99_bg.zip'
>>> manifest = read_manifest(path, error=SdohError)
>>> manifest["source"], manifest["size"] == path.stat().st_size, len(manifest["sha256"])
('demo', True, 64)
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from tqdm import tqdm

from ingestion.sources.http import (
    RETRYABLE_EXCEPTIONS,
    Attempt,
    Retry,
    RetryPolicy,
    Service,
    Trouble,
    check_client_options,
)
from ingestion.sources.workers import WorkerSessions
from sdoh_sources.errors import SdohError

__all__ = [
    "GENERIC_KEYS",
    "MANIFEST_FORMAT",
    "BadDownload",
    "CacheTarget",
    "check_not_html",
    "check_zip",
    "fetch_files",
    "read_manifest",
]

logger = logging.getLogger(__name__)

#: The ``format`` of a manifest unless the caller names its own (TIGER keeps its own).
MANIFEST_FORMAT = "sdoh-download-manifest/1"
#: The manifest keys every download has; ``describe`` and ``check`` add to them.
GENERIC_KEYS = ("format", "url", "size", "sha256", "downloaded_at", "etag", "last_modified")

_CHUNK = 1 << 16
# Resumes that made progress do not use up a retry, but there is a limit all the same.
_MAX_RESUMES = 100
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


class BadDownload(Exception):
    """A complete download that is not the file it should be; the message says why.

    Raised by a target's ``check``: the file is discarded and fetched again.
    """


@dataclass(frozen=True)
class CacheTarget:
    """One file to fetch into the cache.

    Parameters
    ----------
    url : str
        Where the file is; its host and path give its place in the cache.
    check : callable
        Called with the path of a complete download; returns extra manifest fields (e.g.
        `check_zip`'s ``members``) or raises `BadDownload` to have the file discarded and
        fetched again.
    describe : dict
        Manifest fields known before the download (level and year of a boundary file, source
        and release of a publisher file); JSON-serialisable, none of `GENERIC_KEYS`.
    sha256 : str, optional
        The file's expected SHA-256 (64 hex digits): a download with another digest is
        refused, and a cached file is used only if it has this one.

    Raises
    ------
    ValueError
        If ``describe`` names a generic manifest key or ``sha256`` is not 64 hex digits.

    Examples
    --------
    >>> CacheTarget(url="https://example.org/svi.csv", check=check_not_html,
    ...             describe={"source": "svi"}, sha256="AB" * 32).sha256[:6]
    'ababab'
    """

    url: str
    check: Callable[[Path], dict[str, Any]]
    describe: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    def __post_init__(self) -> None:
        clash = sorted(set(self.describe) & set(GENERIC_KEYS))
        if clash:
            raise ValueError(f"{self.url}: describe must not set the manifest's own keys {clash}")
        if self.sha256 is not None:
            digest = self.sha256.strip().lower() if isinstance(self.sha256, str) else ""
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"{self.url}: sha256 must be 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)


# -- checks of a complete download -------------------------------------------------------------


def _head(path: Path, size: int = 60) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _looks_html(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_HTML_STARTS)


def check_not_html(path: Path) -> dict[str, Any]:
    """Refuse an empty file or an HTML page saved in place of a data file (CSV, XLSX).

    Parameters
    ----------
    path : pathlib.Path
        The complete download.

    Returns
    -------
    dict
        Nothing to add to the manifest (``{}``).

    Raises
    ------
    BadDownload
        If the file is empty or begins like an HTML page (a login, error or maintenance page
        served with HTTP 200).

    Examples
    --------
    >>> page = scratch.root / "data.csv"
    >>> _ = page.write_text("<!DOCTYPE html><html><title>Maintenance</title></html>")
    >>> check_not_html(page)
    Traceback (most recent call last):
    ...
    ingestion.sources.download_cache.BadDownload: an HTML page, not a data file: it begins b'<!DOCTYPE html><html><title>Maintenance</title></html>'
    >>> _ = page.write_text("FIPS,RPL_THEMES\\n10001040100,0.42\\n")
    >>> check_not_html(page)
    {}
    """  # noqa: E501 (a doctest's output is one line)
    head = _head(path)
    if not head:
        raise BadDownload("the file is empty")
    if _looks_html(head):
        raise BadDownload(f"an HTML page, not a data file: it begins {head!r}")
    return {}


def check_zip(path: Path, required_suffixes: Sequence[str] = (),
              required_members: Sequence[str] = ()) -> dict[str, Any]:
    """Test every member's CRC and that the required members are there.

    Parameters
    ----------
    path : pathlib.Path
        The complete download.
    required_suffixes : sequence of str
        Endings some member must have (case-insensitive), e.g. a shapefile's ``".shp"``.
    required_members : sequence of str
        Member names that must be in the zip, exactly.

    Returns
    -------
    dict
        ``{"members": [...]}``, the zip's member names, for the manifest.

    Raises
    ------
    BadDownload
        If the file is not a zip (saying so when it is an HTML page), a member fails its CRC
        check, or a required member is missing.

    Examples
    --------
    >>> import zipfile
    >>> with zipfile.ZipFile(scratch.root / "kit.zip", "w") as archive:
    ...     archive.writestr("svi.csv", "FIPS,RPL_THEMES\\n")
    >>> check_zip(scratch.root / "kit.zip", required_suffixes=[".csv"])
    {'members': ['svi.csv']}
    >>> check_zip(scratch.root / "kit.zip", required_members=["README.txt"])
    Traceback (most recent call last):
    ...
    ingestion.sources.download_cache.BadDownload: the zip lacks the members ['README.txt'] (it holds ['svi.csv'])
    """  # noqa: E501 (a doctest's output is one line)
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError) as exc:
        head = _head(path)
        hint = " (an HTML page, not a zip)" if head.lstrip()[:1] == b"<" else ""
        raise BadDownload(f"not a valid zip file ({exc}); it begins {head!r}{hint}") from None
    if broken is not None:
        raise BadDownload(f"zip member {broken!r} fails its CRC check")
    missing = [ext for ext in required_suffixes
               if not any(n.lower().endswith(ext.lower()) for n in names)]
    if missing:
        raise BadDownload(f"the zip has no member ending in {missing} (it holds {names})")
    absent = [name for name in required_members if name not in names]
    if absent:
        raise BadDownload(f"the zip lacks the members {absent} (it holds {names})")
    return {"members": names}


# -- the cache: files mirror their URL, each with a manifest ------------------------------------


def _local_path(root: Path, url: str) -> Path:
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not parts.hostname or not segments or any(s in (".", "..") or "\\" in s
                                                  for s in segments):
        raise ValueError(f"cannot mirror {url!r} in the cache")
    return root.joinpath(parts.hostname, *segments)


def _identity(url: str) -> str:
    """Host and path: the manifest's URL must match on these (not on scheme or port)."""
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_manifest(path: str | os.PathLike[str], *, error: type[SdohError] = SdohError,
                  manifest_format: str = MANIFEST_FORMAT) -> dict[str, Any]:
    """Read the manifest that `fetch_files` wrote beside a downloaded file.

    Parameters
    ----------
    path : str or os.PathLike
        The downloaded file (its manifest is ``<path>.json``).
    error : type of SdohError
        The error to raise, e.g. the caller's own download error.
    manifest_format : str
        The ``format`` the manifest must have (the one given to `fetch_files`).

    Returns
    -------
    dict
        The `GENERIC_KEYS`, the target's ``describe`` and what its ``check`` returned.

    Raises
    ------
    SdohError
        (Of class ``error``) if there is no manifest, it cannot be read or is of another format.

    Examples
    --------
    >>> read_manifest(scratch.root / "nothing.csv")
    Traceback (most recent call last):
    ...
    sdoh_sources.errors.SdohError: .../nothing.csv.json: cannot read the download manifest ([Errno 2] No such file or directory: '...')
    """  # noqa: E501 (a doctest's output is one line)
    manifest = _manifest_path(Path(path))
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{manifest}: cannot read the download manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != manifest_format:
        raise error(f"{manifest}: not a {manifest_format} manifest")
    return data


# -- downloading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """What every download of one `fetch_files` call shares."""

    root: Path
    session: Callable[[], requests.Session]  # the calling thread's session
    retry: RetryPolicy
    service: Service
    error: type[SdohError]
    manifest_format: str
    not_found_hint: Callable[[str], str] | None


def _verified(dest: Path, target: CacheTarget, settings: _Settings) -> bool:
    """Whether ``dest`` is in the cache and matches its manifest (warns when it does not)."""
    if not dest.exists():
        return False
    url = target.url
    try:
        manifest = read_manifest(dest, error=settings.error,
                                 manifest_format=settings.manifest_format)
    except SdohError as exc:
        logger.warning("%s has no usable manifest (%s); downloading it again from %s",
                       dest, exc, url)
        return False
    if _identity(str(manifest.get("url", ""))) != _identity(url):
        logger.warning("%s was downloaded from %s, not %s; downloading it again", dest,
                       manifest.get("url"), url)
        return False
    if target.sha256 is not None and manifest.get("sha256") != target.sha256:
        logger.warning("cached file %s has sha256 %s, not the %s expected; downloading it "
                       "again from %s", dest, manifest.get("sha256"), target.sha256, url)
        return False
    size = dest.stat().st_size
    digest = _sha256(dest) if size == manifest.get("size") else None
    if digest is None or digest != manifest.get("sha256"):
        found = f"sha256 {digest}" if digest else f"{size} bytes"
        expected = (f"sha256 {manifest.get('sha256')}" if digest
                    else f"{manifest.get('size')} bytes")
        logger.warning("cached file %s is corrupted (%s, its manifest says %s); "
                       "downloading it again from %s", dest, found, expected, url)
        return False
    logger.debug("using cached %s (sha256 verified)", dest)
    return True


def _discard(part: Path, state_file: Path) -> None:
    part.unlink(missing_ok=True)
    state_file.unlink(missing_ok=True)


class _Download:
    """One target's download into the cache, with resume, retries and verification."""

    def __init__(self, target: CacheTarget, dest: Path, settings: _Settings) -> None:
        self.target = target
        self.url = target.url
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.state_file = dest.with_name(dest.name + ".part.json")
        self.settings = settings

    def run(self) -> dict[str, Any]:
        """Download, verify and install the file; return its manifest."""
        retry = self.settings.retry

        def on_retry(event: Retry) -> None:
            if event.resumed:
                logger.warning("GET %s: %s; resuming at once", self.url, event.attempt.problem)
            else:
                logger.warning("GET %s: %s; retry %d of %d in %.2f s", self.url,
                               event.attempt.problem, event.failures, retry.max_retries,
                               event.delay)

        outcome, attempts = retry.call(self._verified_attempt, on_retry=on_retry,
                                       max_resumes=_MAX_RESUMES)
        if outcome.ok:
            return self._install(*outcome.value)
        raise self.settings.error(self.settings.service.failure(
            outcome, attempts=attempts, method="GET", url=self.url))

    def _verified_attempt(self) -> Attempt:
        """One GET; a complete file is checked (value: what the check gave, and the digest)."""
        outcome = self._attempt()
        if not outcome.ok:
            return outcome
        try:
            checked = self.target.check(self.part)
        except BadDownload as exc:
            _discard(self.part, self.state_file)
            return Attempt(problem=f"the downloaded file is not usable: {exc}", retryable=True,
                           trouble=Trouble.ALTERED)
        digest = _sha256(self.part)
        expected = self.target.sha256
        if expected is not None and digest != expected:
            _discard(self.part, self.state_file)
            return Attempt(problem=f"the downloaded file's SHA-256 is {digest}, not the "
                           f"{expected} expected (the publisher may have replaced the file: "
                           f"check the release before changing the expected digest)",
                           trouble=Trouble.ALTERED)
        return Attempt(value=(checked, digest))

    def _attempt(self) -> Attempt:
        """One GET into the part file: value True once the whole file is there."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        saved = self._saved_state() if offset else {}
        if offset and saved.get("total") == offset:
            return Attempt(value=True)  # complete before an interruption: just verify it
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = saved.get("etag") or saved.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        logger.debug("GET %s %s", self.url, headers.get("Range", ""))
        retry = self.settings.retry
        try:
            with retry.request(self.settings.session(), "GET", self.url, headers=headers,
                               stream=True) as response:
                return self._receive(response, offset)
        except requests.RequestException as exc:
            return Attempt.from_exception(exc, timeout=retry.timeout,
                                          describe=_exception_problem)

    def _saved_state(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict) or _identity(str(saved.get("url", ""))) != _identity(self.url):
            return {}
        return saved

    def _receive(self, response: requests.Response, offset: int) -> Attempt:
        before = offset  # bytes in hand before this attempt: progress is growing past it
        status = response.status_code
        if status == 416 and offset:
            _discard(self.part, self.state_file)
            return Attempt(problem=f"HTTP 416 for a partial download of {offset} bytes (the "
                           f"file changed or is shorter); starting again", resume=True,
                           retryable=True)
        if status not in (200, 206):
            return self._refusal(response)
        total: int | None
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                _discard(self.part, self.state_file)
                return Attempt(problem=f"HTTP 206 with Content-Range "
                               f"{response.headers.get('Content-Range')!r}, not from "
                               f"byte {offset}; starting again", resume=True, retryable=True)
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            if offset:
                logger.info("%s answered a Range request with the whole file (HTTP 200): "
                            "starting again from the first byte", self.url)
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if status == 200 or not self.state_file.exists():
            etag = response.headers.get("ETag")
            _write_json(self.state_file, {
                "url": self.url, "total": total,
                "etag": etag if etag and not etag.startswith("W/") else None,
                "last_modified": response.headers.get("Last-Modified"),
            })
        written, broken = 0, None
        with open(self.part, mode) as out:
            try:
                for chunk in _chunks(response):
                    out.write(chunk)
                    written += len(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                broken = exc  # keep what arrived: the next attempt resumes from there
            out.flush()
            os.fsync(out.fileno())
        size = offset + written
        why = f"; the connection broke ({type(broken).__name__})" if broken else ""
        if total is not None and size < total:
            return Attempt(problem=f"truncated download: received {size} of the {total} bytes "
                           f"announced (Content-Length){why}", resume=size > before,
                           retryable=True, trouble=Trouble.NETWORK)
        if total is not None and size > total:
            _discard(self.part, self.state_file)
            return Attempt(problem=f"received {size} bytes, more than the {total} announced "
                           f"(Content-Length); starting again", retryable=True,
                           trouble=Trouble.ALTERED)
        if broken is not None:
            return Attempt(problem=f"connection lost after {size} bytes ({type(broken).__name__})",
                           resume=size > before, retryable=True, trouble=Trouble.NETWORK)
        return Attempt(value=True)

    def _refusal(self, response: requests.Response) -> Attempt:
        body = response.raw.read(4096, decode_content=True) if response.raw is not None else b""
        refused = Attempt.from_status(response.status_code, body or b"", response.headers)
        hint = self.settings.not_found_hint
        if response.status_code != 404 or hint is None:
            return refused
        return Attempt(problem=f"{refused.problem}. {hint(self.url)}")

    def _install(self, checked: dict[str, Any], digest: str) -> dict[str, Any]:
        saved = self._saved_state()
        manifest = {
            **self.target.describe,
            **checked,
            "format": self.settings.manifest_format,
            "url": self.url,
            "size": self.part.stat().st_size,
            "sha256": digest,
            "downloaded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "etag": saved.get("etag"),
            "last_modified": saved.get("last_modified"),
        }
        # The manifest first: a file in place is always one whose manifest is written.
        _write_json(_manifest_path(self.dest), manifest)
        os.replace(self.part, self.dest)
        self.state_file.unlink(missing_ok=True)
        return manifest


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, undecoded, keeping every byte received before a drop.

    urllib3 2's ``read(amt)`` (under ``iter_content``) waits to fill ``amt`` and loses what it
    buffered if the connection breaks first; ``read1`` hands over whatever has arrived, so a
    resumed download starts exactly where the last byte on disk ends.
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        yield from response.iter_content(chunk_size=_CHUNK)
        return
    while chunk := read1(_CHUNK, decode_content=False):
        yield chunk


def _exception_problem(exc: requests.RequestException) -> str:
    if isinstance(exc, RETRYABLE_EXCEPTIONS):
        return f"connection failed ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"


def _ensure(target: CacheTarget, dest: Path, settings: _Settings) -> tuple[Path, bool]:
    """Return the verified local file of ``target`` and whether it was downloaded now."""
    if _verified(dest, target, settings):
        return dest, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    manifest = _Download(target, dest, settings).run()
    logger.info("downloaded %s (%d bytes, sha256 %s) in %.1f s", target.url, manifest["size"],
                manifest["sha256"][:12], time.monotonic() - started)
    return dest, True


def _destinations(targets: Sequence[CacheTarget], root: Path) -> list[Path]:
    """Each target's place in the cache; two targets may not share one."""
    dests: dict[Path, str] = {}
    for target in targets:
        if not isinstance(target, CacheTarget):
            raise TypeError(f"targets must be CacheTarget objects, got {type(target).__name__}")
        dest = _local_path(root, target.url)
        if dest in dests:
            raise ValueError(f"{target.url} and {dests[dest]} would share the cached file {dest}")
        dests[dest] = target.url
    return list(dests)


def _report(targets: Sequence[CacheTarget], errors: list[tuple[int, BaseException]], *,
            label: str, error: type[SdohError]) -> SdohError:
    """One error for every failed download (the single one as it is)."""
    if len(errors) == 1:
        i, exc = errors[0]
        if isinstance(exc, error):
            return exc
        failure = error(f"{label}: download of {targets[i].url} failed: {exc}")
        failure.__cause__ = exc
        return failure
    lines = "\n".join(f"  - {exc}" for _, exc in sorted(errors, key=lambda e: e[0])[:10])
    more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
    return error(f"{label}: {len(errors)} of {len(targets)} downloads failed (the others are "
                 f"cached):\n{lines}{more}")


def fetch_files(
    targets: Sequence[CacheTarget],
    *,
    cache_dir: str | os.PathLike[str],
    retry: RetryPolicy,
    service: Service,
    error: type[SdohError],
    session: requests.Session | None = None,
    max_workers: int = 4,
    progress: bool | None = None,
    label: str = "download",
    manifest_format: str = MANIFEST_FORMAT,
    not_found_hint: Callable[[str], str] | None = None,
    user_agent: str = "sdoh-feature-store downloader",
) -> list[Path]:
    """Download files into the verified cache (or find them there); return their local paths.

    Parameters
    ----------
    targets : sequence of CacheTarget
        The files; no two may have the same host and path.
    cache_dir : str or os.PathLike
        The folder files are kept in, mirroring their URL (``{cache_dir}/{host}/{path}``).
    retry : RetryPolicy
        Timeout, retries and backoff of every request; shared with other clients, one HTTP
        429 pauses all of them.
    service : Service
        How errors name the server and what they advise.
    error : type of SdohError
        The error raised for a failed download (and by `read_manifest` here).
    session : requests.Session, optional
        The session every request goes through, shared by the threads and not closed; by
        default each worker thread makes its own, closed at the end of the call.
    max_workers : int
        Files downloaded at once.
    progress : bool, optional
        A tqdm bar over files: True always, False never, None (default) on a terminal.
    label : str
        What the files are, for the bar, the log and a multi-file error.
    manifest_format : str
        The manifests' ``format`` (a file cached under another format is downloaded again).
    not_found_hint : callable, optional
        Given the URL of an HTTP 404, what may be wrong: added to its error.
    user_agent : str
        The User-Agent of the sessions made here.

    Returns
    -------
    list of pathlib.Path
        The verified local files, in the order of ``targets``; each has its manifest
        (`read_manifest`).

    Raises
    ------
    SdohError
        (Of class ``error``) if a file could not be downloaded or verified after the retries:
        HTTP 404 or another 4xx, repeated 5xx or timeouts, truncated bodies, a file its check
        refuses, a digest other than the expected one. The other files are still downloaded
        and one error lists every failure.
    ValueError
        If a URL cannot be mirrored, two targets share a file, or ``max_workers`` is bad.
    TypeError
        If ``session`` is not a `requests.Session`, ``progress`` not a bool or None, or a target
        not a `CacheTarget`.

    Examples
    --------
    ``tiger_url`` is a local file server; the second call finds the file in the cache, checks
    its SHA-256 against the manifest and makes no request:

    >>> from ingestion.sources.http import RetryPolicy, Service
    >>> options = dict(cache_dir=scratch.root / "cache", error=SdohError, progress=False,
    ...                retry=RetryPolicy(timeout=30.0, max_retries=2, backoff=1.0, max_delay=10.0),
    ...                service=Service(name="the demo server", url_option="base_url="))
    >>> target = CacheTarget(url=f"{tiger_url}/TIGER2010/BG/2010/tl_2010_99_bg10.zip",
    ...                      check=check_zip, describe={"release": 2010})
    >>> first = fetch_files([target], **options)
    >>> fetch_files([target], **options) == first
    True
    """
    check_client_options(timeout=retry.timeout, max_retries=retry.max_retries,
                         backoff=retry.backoff, max_delay=retry.max_delay,
                         max_workers=max_workers, progress=progress)
    if session is not None and not isinstance(session, requests.Session):
        raise TypeError(f"session must be a requests.Session, got {type(session).__name__}")
    dests = _destinations(targets, Path(cache_dir))
    workers = WorkerSessions(max_workers=max_workers, name="download", user_agent=user_agent)
    settings = _Settings(root=Path(cache_dir), retry=retry, service=service, error=error,
                         session=workers.session if session is None else lambda: session,
                         manifest_format=manifest_format, not_found_hint=not_found_hint)
    shown = progress if progress is not None else sys.stderr.isatty()
    try:
        return _run(targets, dests, settings, workers=workers, label=label, shown=shown)
    finally:
        workers.close()


def _run(targets: Sequence[CacheTarget], dests: list[Path], settings: _Settings, *,
         workers: WorkerSessions, label: str, shown: bool) -> list[Path]:
    """Fetch every target on the bounded pool; raise one error naming every failed URL."""
    results: list[Path | None] = [None] * len(targets)
    errors: list[tuple[int, BaseException]] = []
    fetched = 0
    with tqdm(total=len(targets), desc=label, unit="file", disable=not shown,
              leave=False) as bar:
        def outcome(i: int, fetch: Callable[[], tuple[Path, bool]]) -> None:
            nonlocal fetched
            try:
                results[i], downloaded = fetch()
                fetched += downloaded
            except (SdohError, OSError) as exc:
                errors.append((i, exc))
            bar.update()

        jobs = list(zip(targets, dests, strict=True))
        if workers.max_workers == 1 or len(jobs) <= 1:
            for i, (target, dest) in enumerate(jobs):
                outcome(i, lambda t=target, d=dest: _ensure(t, d, settings))
        else:
            pool = workers.executor()
            futures = {pool.submit(_ensure, t, d, settings): i for i, (t, d) in enumerate(jobs)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    outcome(futures[future], future.result)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    logger.info("%s: %d file(s), %d downloaded, %d from the cache, %d failed", label,
                len(targets), fetched, len(targets) - fetched - len(errors), len(errors))
    if errors:
        raise _report(targets, errors, label=label, error=settings.error)
    return [path for path in results if path is not None]
