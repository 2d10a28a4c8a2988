"""Download a publisher release's file into the verified, resumable cache.

The release's ``url`` (and, where the spec pins it, its ``sha256``) come from its source spec;
the cache, resume, retries and verification are `ingestion.sources.download_cache`'s, the same
as for TIGER boundary files. A zip (or XLSX, itself a zip) is CRC-checked; any other file must
not be an HTML page.

Examples
--------
A ``mirror`` replaces the scheme and host of the spec's URL (a release without a URL can only
be read from a file you downloaded):

>>> from sdoh_sources.publisher import publisher_source
>>> release_url(publisher_source("chr").release("2010"), mirror="http://127.0.0.1:8000")
'http://127.0.0.1:8000/sites/default/files/analytic_data2010.csv'
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ingestion.core.errors import InputError
from ingestion.sources.download_cache import CacheTarget, check_not_html, check_zip, fetch_files
from ingestion.sources.http import (
    FROM_ENVIRONMENT,
    CacheDefault,
    RetryPolicy,
    Service,
    cache_root,
    check_client_options,
    check_service_url,
    client_policy,
)
from sdoh_sources.errors import SdohError
from sdoh_sources.publisher import PublisherSource, SourceRelease

__all__ = ["SourceDownloadError", "download_release", "release_url"]

ZIP_KINDS = (".zip", ".xlsx")  # an XLSX is a zip too: its CRCs are checked the same way


class SourceDownloadError(SdohError):
    """A publisher file could not be downloaded or verified; the message names the URL and why."""


def release_url(release: SourceRelease, *, mirror: str | None = None) -> str:
    """The URL a release is downloaded from: the spec's, or the same path on ``mirror``.

    Raises
    ------
    InputError
        The spec has no URL for the release (the publisher serves it through a form).
    """
    if release.url is None:
        raise InputError(f"release {release.release} ({release.geography_level}) has no download "
                         "URL in its spec (the publisher serves it through a form): download the "
                         "file yourself and pass its path")
    if mirror is None:
        return release.url
    parts = urlsplit(release.url)
    return check_service_url(mirror, what="--mirror") + parts.path + (
        f"?{parts.query}" if parts.query else "")


def _service(source: PublisherSource) -> Service:
    return Service(
        name=f"the file server of {source.publisher}", url_option="--mirror (mirror=)",
        busy=" (an interrupted download resumes where it stopped)",
        offline="download the file on a machine with a network and pass its path, or point "
                "--mirror (mirror=) at a copy you can reach",
        refused=f"Publishers move files: find the current link on {source.homepage} and "
                f"correct the release's url in sdoh_sources/catalog/sources/{source.source}.yaml.")


def _check(release: SourceRelease, url: str) -> Callable[[Path], dict[str, Any]]:
    if release.format.member or Path(urlsplit(url).path).suffix.lower() in ZIP_KINDS:
        required = (release.format.member,) if release.format.member else ()
        return functools.partial(check_zip, required_members=required)
    return check_not_html


def download_release(
    source: PublisherSource,
    release: SourceRelease,
    *,
    cache_dir: str | os.PathLike[str] | CacheDefault = FROM_ENVIRONMENT,
    mirror: str | None = None,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    max_retries: int = 4,
    backoff: float = 1.0,
    max_delay: float = 60.0,
    progress: bool | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    retry: RetryPolicy | None = None,
) -> Path:
    """Download a release's file into the cache (or find it there, verified); return its path.

    Parameters
    ----------
    source, release : PublisherSource, SourceRelease
        The spec and the release whose ``url`` (and ``sha256``, if pinned) to fetch.
    cache_dir : str or os.PathLike, optional
        The cache folder (files mirror their URL, each with a manifest); ``SDOH_CACHE_DIR``
        if left out. One of the two is required.
    mirror : str, optional
        A server holding the same paths (``https://``, or ``http://`` on loopback only).
    session, timeout, max_retries, backoff, max_delay, progress, rng, sleep, retry
        As for `ingestion.sources.tiger.download_boundaries`.

    Returns
    -------
    pathlib.Path
        The verified local file.

    Raises
    ------
    SourceDownloadError
        After the retries: an HTTP error (the URL and what to do), a truncated body, an HTML
        page or a broken zip instead of the file, or a digest other than the pinned one.
    InputError
        The release has no URL in its spec.
    ValueError
        No cache folder, a bad mirror, or bad retry settings.

    See ``tests/test_publisher_download.py`` for runs against a local file server.
    """
    check_client_options(timeout=timeout, max_retries=max_retries, backoff=backoff,
                         max_delay=max_delay, max_workers=1, progress=progress)
    root = cache_root(cache_dir)
    if root is None:
        raise ValueError("download_release needs a folder to keep files in: pass cache_dir= "
                         "(--cache-dir) or set the SDOH_CACHE_DIR environment variable")
    url = release_url(release, mirror=mirror)
    policy = client_policy(retry, download_release, timeout=timeout, max_retries=max_retries,
                           backoff=backoff, max_delay=max_delay, rng=rng, sleep=sleep)
    target = CacheTarget(url=url, check=_check(release, url), sha256=release.sha256,
                         describe={"source": source.source, "release": release.release,
                                   "geography_level": release.geography_level,
                                   "boundary_vintage": release.boundary_vintage})
    return fetch_files([target], cache_dir=root, retry=policy, service=_service(source),
                       error=SourceDownloadError, session=session, max_workers=1,
                       progress=progress, label=f"{source.source} {release.release}",
                       user_agent="sdoh-feature-store source downloader")[0]
