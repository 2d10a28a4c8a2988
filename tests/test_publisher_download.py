"""Tests of ingestion.sources.publisher_download and `sdoh ingest source` without a PATH.

A local file server holds the real County Health Rankings rows at the publisher's path; the
real client downloads them into the verified cache and the kit ingests them. Nothing is patched;
requests are counted on the server.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from file_server import NOT_FOUND_PAGE, FileServer
from needs import real_path

from ingestion.cli import sdoh
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.jobs.ingest import ingest_source
from ingestion.sources.http import RetryPolicy
from ingestion.sources.publisher_download import (
    SourceDownloadError,
    download_release,
    release_url,
)
from sdoh_sources.publisher import publisher_source

CHR = publisher_source("chr")
CHR_PATH = "sites/default/files/analytic_data2010.csv"
QUICK = RetryPolicy(timeout=5, max_retries=1, backoff=0.0, max_delay=0.0)


@pytest.fixture
def server():
    data = real_path("ma_chr2010", "analytic_data2010__MA_subset.csv").read_bytes()
    srv = FileServer({CHR_PATH: data})
    yield srv
    srv.stop()


def test_mirror_keeps_the_publishers_path():
    url = release_url(CHR.release("2010"), mirror="https://mirror.example.org/")
    assert url == "https://mirror.example.org/sites/default/files/analytic_data2010.csv"


def test_downloaded_once_then_read_from_the_cache(server, tmp_path):
    release = CHR.release("2010")
    first = download_release(CHR, release, cache_dir=tmp_path, mirror=server.base_url, retry=QUICK)
    again = download_release(CHR, release, cache_dir=tmp_path, mirror=server.base_url, retry=QUICK)
    assert first == again and first.read_bytes() == server.files[f"/{CHR_PATH}"]
    assert [s.status for s in server.log] == [200]  # the second call verified the cached copy


def test_an_html_page_instead_of_the_csv_is_refused(server, tmp_path):
    server.files[f"/{CHR_PATH}"] = NOT_FOUND_PAGE
    with pytest.raises(SourceDownloadError, match=r"HTML page.*analytic_data2010\.csv"):
        download_release(CHR, CHR.release("2010"), cache_dir=tmp_path, mirror=server.base_url,
                         retry=QUICK)


def test_a_release_without_url_needs_a_file(tmp_path):
    eji = publisher_source("eji")
    with pytest.raises(InputError, match="no download URL in its spec"):
        ingest_source("eji", 2022, workspace=Workspace(tmp_path / "ws"))
    with pytest.raises(InputError, match="no download URL"):
        release_url(eji.release("2022"))


def test_cli_downloads_reads_and_publishes(server, tmp_path):
    ws = tmp_path / "ws"
    result = CliRunner().invoke(sdoh, ["ingest", "source", "chr", "--release", "2010",
                                       "--mirror", server.base_url, "--cache-dir", str(tmp_path / "c"),
                                       "--workspace", str(ws)])
    assert result.exit_code == 0, result.output
    assert "analytic_data2010.csv: 15 rows (0 blank lines skipped)" in result.output
    assert "set aside 1: summary row" in result.output
    assert "published chr_county: 14 rows" in result.output
    assert Workspace(ws).is_published("chr_county")


def test_cli_names_the_known_sources(tmp_path):
    result = CliRunner().invoke(sdoh, ["ingest", "source", "astrology", "--release", "2022",
                                       "--workspace", str(tmp_path / "ws")])
    assert result.exit_code != 0
    assert "no publisher source 'astrology'; known sources: adi, chr, " in result.output
