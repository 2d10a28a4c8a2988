"""Tests of ingestion.sources.download_cache: the verified, resumable cache of every download.

A local file server (tests/file_server.py) serves a zip, a CSV and error pages at publisher-like
paths, answers Range requests and can be told to fail; the real client runs against it over
HTTP and nothing is patched. Requests are counted on the server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import random
import zipfile
from pathlib import Path

import pytest
from file_server import LAST_MODIFIED, FileServer

from ingestion.sources.download_cache import (
    GENERIC_KEYS,
    MANIFEST_FORMAT,
    BadDownload,
    CacheTarget,
    check_not_html,
    check_zip,
    fetch_files,
    read_manifest,
)
from ingestion.sources.http import RetryPolicy, Service
from sdoh_sources.errors import SdohError

ZIP = "kit/2022/svi_kit.zip"
CSV = "svi/2022/SVI_2022_US.csv"
PAGE_CSV = "svi/2023/SVI_2023_US.csv"  # a maintenance page served with HTTP 200
EMPTY_CSV = "svi/2024/SVI_2024_US.csv"
PAGE_ZIP = "kit/2023/svi_kit.zip"
CSV_BYTES = b"FIPS,RPL_THEMES\n10001040100,0.4242\n10001040200,0.9876\n" * 200
MAINTENANCE = (b"<!DOCTYPE html>\n<html><head><title>Site maintenance</title></head>"
               b"<body>Back soon</body></html>\n")
SERVICE = Service(name="the test file server", url_option="--base-url (base_url=)",
                  offline="copy a cache", refused="Check the URL.")


class DownloadError(SdohError):
    """The error the tests' downloads raise."""


def _zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


ZIP_BYTES = _zip_bytes({"svi.csv": CSV_BYTES, "README.txt": b"made up",
                        "noise.bin": random.Random(1).randbytes(20_000)})


@pytest.fixture
def server():
    srv = FileServer({ZIP: ZIP_BYTES, CSV: CSV_BYTES, PAGE_CSV: MAINTENANCE, EMPTY_CSV: b"",
                      PAGE_ZIP: MAINTENANCE}, prefix="/data")
    yield srv
    srv.stop()


def zip_target(server: FileServer, path: str = ZIP, **options) -> CacheTarget:
    return CacheTarget(url=f"{server.base_url}/{path}", check=check_zip,
                       describe={"source": "svi_kit"}, **options)


def csv_target(server: FileServer, path: str = CSV, **options) -> CacheTarget:
    return CacheTarget(url=f"{server.base_url}/{path}", check=check_not_html,
                       describe={"source": "svi", "release": 2022}, **options)


def fetch(tmp_path: Path, *targets: CacheTarget, max_retries: int = 4, timeout: float = 5.0,
          **options) -> list[Path]:
    policy = RetryPolicy(timeout=timeout, max_retries=max_retries, backoff=0.0, max_delay=0.0)
    options = {"cache_dir": tmp_path / "cache", "retry": policy, "service": SERVICE,
               "error": DownloadError, "progress": False, **options}
    return fetch_files(list(targets), **options)


def mirrored(tmp_path: Path, path: str) -> Path:
    return tmp_path / "cache" / "127.0.0.1" / "data" / path


def manifest_of(path: Path) -> dict:
    return read_manifest(path, error=DownloadError)


# -- what lands in the cache --------------------------------------------------------------------


def test_a_zip_is_cached_under_its_url_with_its_manifest(server, tmp_path):
    [path] = fetch(tmp_path, zip_target(server))
    assert path == mirrored(tmp_path, ZIP) and path.read_bytes() == ZIP_BYTES
    manifest = manifest_of(path)
    assert set(manifest) == {*GENERIC_KEYS, "source", "members"}
    assert manifest["format"] == MANIFEST_FORMAT
    assert manifest["url"] == f"{server.base_url}/{ZIP}"
    assert manifest["size"] == len(ZIP_BYTES)
    assert manifest["sha256"] == hashlib.sha256(ZIP_BYTES).hexdigest()
    assert dt.datetime.fromisoformat(manifest["downloaded_at"]).tzinfo is not None
    assert manifest["last_modified"] == LAST_MODIFIED and manifest["etag"].startswith('"')
    assert (manifest["source"], manifest["members"]) == ("svi_kit",
                                                         ["svi.csv", "README.txt", "noise.bin"])
    assert not list(path.parent.glob("*.part*"))


def test_a_plain_csv_is_downloaded_and_verified(server, tmp_path):
    digest = hashlib.sha256(CSV_BYTES).hexdigest()
    [path] = fetch(tmp_path, csv_target(server, sha256=digest.upper()))
    assert path == mirrored(tmp_path, CSV) and path.read_bytes() == CSV_BYTES
    manifest = manifest_of(path)
    assert set(manifest) == {*GENERIC_KEYS, "source", "release"}
    assert (manifest["sha256"], manifest["size"], manifest["release"]) == (digest,
                                                                           len(CSV_BYTES), 2022)


def test_a_manifest_of_its_own_format(server, tmp_path):
    [path] = fetch(tmp_path, csv_target(server), manifest_format="sdoh-test-manifest/1")
    assert read_manifest(path, error=DownloadError,
                         manifest_format="sdoh-test-manifest/1")["release"] == 2022
    with pytest.raises(DownloadError, match=r"not a sdoh-download-manifest/1 manifest"):
        manifest_of(path)


def test_targets_come_back_in_their_order_from_a_bounded_pool(server, tmp_path):
    server.delay = 0.1
    paths = fetch(tmp_path, csv_target(server), zip_target(server), max_workers=2, progress=True)
    assert paths == [mirrored(tmp_path, CSV), mirrored(tmp_path, ZIP)]
    assert server.max_in_flight == 2


# -- the cache answers: re-verified, or downloaded again -------------------------------------------


def test_a_cached_file_is_re_verified_and_reused_without_a_request(server, tmp_path, caplog):
    digest = hashlib.sha256(CSV_BYTES).hexdigest()
    [first] = fetch(tmp_path, csv_target(server))
    with caplog.at_level(logging.DEBUG, logger="ingestion.sources.download_cache"):
        [again] = fetch(tmp_path, csv_target(server, sha256=digest))
    assert again == first and again.read_bytes() == CSV_BYTES
    assert len(server.served(CSV)) == 1  # the second call asked nothing of the server
    assert f"using cached {first} (sha256 verified)" in caplog.text


@pytest.mark.parametrize("damage", ["flip_byte", "truncate_file", "delete_manifest"])
def test_a_corrupted_cached_file_is_detected_and_downloaded_again(server, tmp_path, caplog,
                                                                  damage):
    [path] = fetch(tmp_path, zip_target(server))
    data = bytearray(path.read_bytes())
    if damage == "flip_byte":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate_file":
        path.write_bytes(bytes(data[:100]))
    else:
        Path(f"{path}.json").unlink()
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.download_cache"):
        [again] = fetch(tmp_path, zip_target(server))
    assert again == path and path.read_bytes() == ZIP_BYTES
    assert len(server.served(ZIP)) == 2
    expected = "has no usable manifest" if damage == "delete_manifest" else "is corrupted"
    assert any(expected in r.getMessage() for r in caplog.records)
    assert manifest_of(path)["sha256"] == hashlib.sha256(ZIP_BYTES).hexdigest()


@pytest.mark.parametrize(("change", "warning"), [
    ({"url": "https://elsewhere.example/data/svi/2022/SVI_2022_US.csv"}, "was downloaded from "
     "https://elsewhere.example/data/svi/2022/SVI_2022_US.csv, not http://127.0.0.1"),
    ({"format": "sdoh-boundary-manifest/1"}, "not a sdoh-download-manifest/1 manifest"),
    ({"sha256": "0" * 64}, "is corrupted (sha256 " + hashlib.sha256(CSV_BYTES).hexdigest()),
    ({"size": 5}, f"is corrupted ({len(CSV_BYTES)} bytes, its manifest says 5 bytes)"),
])
def test_a_manifest_that_does_not_match_means_a_new_download(server, tmp_path, caplog, change,
                                                             warning):
    [path] = fetch(tmp_path, csv_target(server))
    manifest = Path(f"{path}.json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **change}))
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.download_cache"):
        fetch(tmp_path, csv_target(server))
    assert warning in caplog.text
    assert len(server.served(CSV)) == 2
    assert manifest_of(path)["url"] == f"{server.base_url}/{CSV}"


def test_a_port_change_keeps_the_cache(server, tmp_path):
    [path] = fetch(tmp_path, csv_target(server))
    manifest = Path(f"{path}.json")
    moved = json.loads(manifest.read_text())["url"].replace("127.0.0.1:", "127.0.0.1:1")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "url": moved}))
    fetch(tmp_path, csv_target(server))
    assert len(server.served(CSV)) == 1  # host and path match: the port does not matter


# -- expected digests ----------------------------------------------------------------------------


def test_an_expected_sha256_mismatch_is_refused_naming_the_url_and_both_digests(server, tmp_path):
    expected, found = "ab" * 32, hashlib.sha256(CSV_BYTES).hexdigest()
    with pytest.raises(DownloadError) as caught:
        fetch(tmp_path, csv_target(server, sha256=expected))
    message = str(caught.value)
    assert f"the downloaded file's SHA-256 is {found}, not the {expected} expected" in message
    assert f"(GET {server.base_url}/{CSV})" in message
    assert len(server.served(CSV)) == 1  # the same bytes again would not help: no retry
    assert not mirrored(tmp_path, CSV).exists()
    assert not list((tmp_path / "cache").rglob("*.part*"))


def test_a_cached_file_with_another_digest_than_expected_is_fetched_again(server, tmp_path,
                                                                         caplog):
    [path] = fetch(tmp_path, csv_target(server))
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.download_cache"), \
            pytest.raises(DownloadError, match=r"SHA-256 is [0-9a-f]{64}, not the (cd){32}"):
        fetch(tmp_path, csv_target(server, sha256="cd" * 32))
    assert f"not the {'cd' * 32} expected; downloading it again" in caplog.text
    assert len(server.served(CSV)) == 2


@pytest.mark.parametrize(("options", "match"), [
    ({"describe": {"url": "x"}}, r"describe must not set the manifest's own keys \['url'\]"),
    ({"describe": {"sha256": "x", "size": 1}}, r"own keys \['sha256', 'size'\]"),
    ({"sha256": "abc"}, r"sha256 must be 64 hex digits, got 'abc'"),
    ({"sha256": "g" * 64}, r"64 hex digits"),
])
def test_bad_targets_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        CacheTarget(url="https://example.org/a.csv", check=check_not_html, **options)


# -- checks of a complete download -------------------------------------------------------------


@pytest.mark.parametrize(("target", "match"), [
    (lambda s: csv_target(s, PAGE_CSV),
     r"not usable: an HTML page, not a data file: it begins b'<!DOCTYPE html>"),
    (lambda s: csv_target(s, EMPTY_CSV), r"not usable: the file is empty"),
    (lambda s: zip_target(s, PAGE_ZIP), r"not a valid zip file .*an HTML page, not a zip"),
])
def test_an_html_page_or_empty_file_is_refused_and_nothing_cached(server, tmp_path, target,
                                                                  match):
    chosen = target(server)
    with pytest.raises(DownloadError, match=match + r".*\. Nothing was cached: run again"):
        fetch(tmp_path, chosen, max_retries=1)
    assert [r.status for r in server.served()] == [200, 200]  # retried once, as altered
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_check_zip_finds_a_bad_crc_and_missing_members(tmp_path):
    data = bytearray(_zip_bytes({"a.csv": b"x,y\n1,2\n" * 50}, zipfile.ZIP_STORED))
    good = tmp_path / "good.zip"
    good.write_bytes(bytes(data))
    assert check_zip(good, required_suffixes=[".CSV"], required_members=["a.csv"]) == \
        {"members": ["a.csv"]}
    with pytest.raises(BadDownload, match=r"has no member ending in \['\.shp'\] \(it holds "
                                          r"\['a\.csv'\]\)"):
        check_zip(good, required_suffixes=[".shp"])
    with pytest.raises(BadDownload, match=r"lacks the members \['b\.csv'\]"):
        check_zip(good, required_members=["b.csv"])
    at = bytes(data).index(b"x,y\n1,2\n")
    data[at] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadDownload, match=r"zip member 'a\.csv' fails its CRC check"):
        check_zip(bad)


def test_a_check_can_add_to_the_manifest_and_refuse(server, tmp_path):
    calls = []

    def rows(path: Path) -> dict:
        calls.append(path.name)
        if len(calls) == 1:
            raise BadDownload("cut short")
        return {"rows": path.read_bytes().count(b"\n") - 1}

    target = CacheTarget(url=f"{server.base_url}/{CSV}", check=rows)
    [path] = fetch(tmp_path, target)
    assert calls == [f"{Path(CSV).name}.part"] * 2  # checked before it is put in place
    assert manifest_of(path)["rows"] == 599
    assert len(server.served(CSV)) == 2


# -- resume ----------------------------------------------------------------------------------


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.fault(ZIP, "drop")
    [path] = fetch(tmp_path, zip_target(server))
    assert path.read_bytes() == ZIP_BYTES
    first, second = server.served(ZIP)
    assert (first.status, first.sent, first.range) == (200, len(ZIP_BYTES) // 2, None)
    assert second.range == f"bytes={len(ZIP_BYTES) // 2}-" and second.status == 206
    assert second.if_range and second.if_range.startswith('"')  # the first answer's ETag
    assert first.sent + second.sent == len(ZIP_BYTES)  # nothing fetched twice


def test_an_interrupted_run_is_resumed_by_the_next_one(server, tmp_path):
    server.fault(ZIP, "drop", 503)
    with pytest.raises(DownloadError, match="HTTP 503"):
        fetch(tmp_path, zip_target(server), max_retries=0)
    part = Path(f"{mirrored(tmp_path, ZIP)}.part")
    assert part.stat().st_size == len(ZIP_BYTES) // 2
    [path] = fetch(tmp_path, zip_target(server))
    assert path.read_bytes() == ZIP_BYTES and not part.exists()
    last = server.served(ZIP)[-1]
    assert (last.range, last.status) == (f"bytes={len(ZIP_BYTES) // 2}-", 206)


def test_a_file_changed_on_the_server_is_not_spliced(server, tmp_path):
    server.fault(ZIP, "drop", 503)
    with pytest.raises(DownloadError):
        fetch(tmp_path, zip_target(server), max_retries=0)
    newer = _zip_bytes({"svi.csv": CSV_BYTES * 2, "noise.bin": random.Random(2).randbytes(9000)})
    server.files[f"/data/{ZIP}"] = newer  # a new ETag: If-Range no longer matches
    [path] = fetch(tmp_path, zip_target(server))
    assert path.read_bytes() == newer
    last = server.served(ZIP)[-1]
    assert last.range is not None and last.if_range is not None and last.status == 200


def test_a_server_without_range_support_starts_again(server, tmp_path):
    server.range_support = False
    server.fault(ZIP, "drop")
    [path] = fetch(tmp_path, zip_target(server))
    assert path.read_bytes() == ZIP_BYTES
    second = server.served(ZIP)[1]
    assert second.range is not None and second.status == 200  # asked for the rest, got it all


def test_a_416_for_a_part_longer_than_the_file_starts_again(server, tmp_path):
    part = Path(f"{mirrored(tmp_path, CSV)}.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(CSV_BYTES + b"left over from a longer file")
    offset = part.stat().st_size
    [path] = fetch(tmp_path, csv_target(server), max_retries=0)  # a 416 uses up no retry
    assert path.read_bytes() == CSV_BYTES
    first, second = server.served(CSV)
    assert (first.range, first.status) == (f"bytes={offset}-", 416)
    assert (second.range, second.status) == (None, 200)


def test_a_truncated_body_is_detected(server, tmp_path):
    server.fault(ZIP, "truncate", "truncate", "truncate")
    size = len(ZIP_BYTES)
    with pytest.raises(DownloadError,
                       match=rf"truncated download: received {size // 2} of the {size} bytes "
                             rf"announced \(Content-Length\).* \(GET .*svi_kit\.zip\)\. "
                             rf"Check the network connection \(and any proxy settings\), then "
                             rf"run again; without a network, copy a cache"):
        fetch(tmp_path, zip_target(server), max_retries=1)
    dest = mirrored(tmp_path, ZIP)
    assert not dest.exists() and not Path(f"{dest}.json").exists()


def test_a_truncated_body_then_a_good_one_succeeds(server, tmp_path):
    server.fault(ZIP, "truncate")
    [path] = fetch(tmp_path, zip_target(server))
    assert path.read_bytes() == ZIP_BYTES


# -- failures ----------------------------------------------------------------------------------


def test_a_404_gets_the_callers_hint_and_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError) as caught:
        fetch(tmp_path, csv_target(server, "svi/2031/SVI_2031_US.csv"),
              not_found_hint=lambda url: f"no release at {url.rsplit('/', 1)[0]}/ yet")
    assert str(caught.value) == (
        f"A request to the test file server failed: HTTP 404: 404 Not Found. no release at "
        f"{server.base_url}/svi/2031/ yet (GET {server.base_url}/svi/2031/SVI_2031_US.csv). "
        f"Check the URL.")
    assert len(server.served()) == 1


def test_every_failure_is_listed_and_the_others_are_kept(server, tmp_path):
    targets = [csv_target(server, "svi/2031/a.csv"), zip_target(server),
               csv_target(server, "svi/2032/b.csv")]
    with pytest.raises(DownloadError, match=r"^files: 2 of 3 downloads failed \(the others are "
                                            r"cached\):\n  - .*a\.csv.*\n  - .*b\.csv"):
        fetch(tmp_path, *targets, max_workers=3, label="files")
    assert mirrored(tmp_path, ZIP).exists()


@pytest.mark.parametrize(("targets", "options", "error", "match"), [
    (lambda s: [csv_target(s), csv_target(s)], {}, ValueError, r"would share the cached file"),
    (lambda s: [CacheTarget(url="https://example.org/", check=check_not_html)], {}, ValueError,
     r"cannot mirror"),
    (lambda s: [f"{s.base_url}/{CSV}"], {}, TypeError, r"CacheTarget objects, got str"),
    (lambda s: [csv_target(s)], {"session": object()}, TypeError, r"requests\.Session"),
    (lambda s: [csv_target(s)], {"max_workers": 0}, ValueError, r"max_workers"),
    (lambda s: [csv_target(s)], {"progress": "yes"}, TypeError, r"progress"),
])
def test_bad_calls_are_refused_before_any_request(server, tmp_path, targets, options, error,
                                                  match):
    with pytest.raises(error, match=match):
        fetch(tmp_path, *targets(server), **options)
    assert server.served() == []


def test_read_manifest_of_a_file_without_one(tmp_path):
    with pytest.raises(DownloadError, match=r"data\.csv\.json: cannot read the download manifest"):
        manifest_of(tmp_path / "data.csv")
    (tmp_path / "x.csv.json").write_text("[1, 2]")
    with pytest.raises(SdohError, match=r"not a sdoh-download-manifest/1 manifest"):
        read_manifest(tmp_path / "x.csv")
