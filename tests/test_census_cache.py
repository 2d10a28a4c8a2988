"""The Census client's disk cache, against the local replay server (never mocked).

A rerun answers from the cache with zero HTTP requests; a run stopped by a permanent failure
resumes with only the requests it had not finished; errors are never cached; the API key never
reaches a cache file.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from test_census_api import DETAILED, KEY, PROFILE, SUBJECT, mixed_tree

from ingestion.core.errors import CensusApiError
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import CACHE_ENV, CensusClient, get_acs

VARIABLES = [*DETAILED, *SUBJECT, *PROFILE]
STATES = ["99", "98"]
# 2 states x (2 detailed chunks + 1 subject + 1 profile)
N_REQUESTS = 8


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    monkeypatch.delenv(CACHE_ENV, raising=False)


@pytest.fixture
def server(tmp_path):
    with CensusReplayServer(mixed_tree(tmp_path / "replay"), api_key=KEY) as srv:
        yield srv


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def _client(server: CensusReplayServer, cache_dir, **kw) -> CensusClient:
    settings = {"api_key": KEY, "timeout": 2.0, "max_retries": 2, "backoff": 0.01,
                "max_delay": 0.2, "progress": False, "max_workers": 1, **kw}
    return CensusClient(base_url=server.base_url, cache_dir=cache_dir, **settings)


def _pull(client: CensusClient, geography: str = "tract") -> pd.DataFrame:
    with client:
        return get_acs(geography, VARIABLES, 2024, STATES, client=client)


def _files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


@pytest.mark.parametrize("workers", [1, 4])
def test_second_run_makes_zero_requests(server, cache, workers):
    first = _pull(_client(server, cache, max_workers=workers))
    assert len(server.requests) == N_REQUESTS
    assert len(_files(cache)) == N_REQUESTS
    server.requests.clear()
    second = _pull(_client(server, cache, max_workers=workers))
    assert server.requests == []
    pd.testing.assert_frame_equal(first, second)


def test_cache_survives_a_new_server_port(server, cache, tmp_path):
    first = _pull(_client(server, cache))
    with CensusReplayServer(tmp_path / "replay", api_key=KEY) as again:
        assert again.base_url != server.base_url
        second = _pull(_client(again, cache))
        assert again.requests == []
    pd.testing.assert_frame_equal(first, second)


def test_interrupted_run_resumes_with_only_the_missing_requests(server, cache):
    server.inject(None, times=3)  # three normal answers, then a permanent failure
    server.inject(400, body="error: unknown variable 'S1701_C03_001E'")
    with pytest.raises(CensusApiError, match=r"HTTP 400: error: unknown variable"):
        _pull(_client(server, cache))
    first = list(server.requests)
    assert len(first) == 4 and len(_files(cache)) == 3
    server.requests.clear()
    resumed = _pull(_client(server, cache))
    second = list(server.requests)
    assert len(second) == N_REQUESTS - 3
    assert first[3] in second  # the failed request is fetched again
    assert set(first[:3]).isdisjoint(second)  # the finished ones are not
    server.requests.clear()
    pd.testing.assert_frame_equal(resumed, _pull(_client(server, None)))


def test_concurrent_interrupted_run_keeps_what_finished(server, cache):
    server.inject(None, times=2)
    server.inject(400, body="error: unknown variable 'DP03_0009E'")
    with pytest.raises(CensusApiError):
        _pull(_client(server, cache, max_workers=4))
    answered = {r for r in server.requests[:2]}
    cached = len(_files(cache))
    assert 2 <= cached < N_REQUESTS
    server.requests.clear()
    _pull(_client(server, cache, max_workers=4))
    assert len(server.requests) == N_REQUESTS - cached
    assert answered.isdisjoint(server.requests)
    server.requests.clear()
    _pull(_client(server, cache, max_workers=4))
    assert server.requests == []


@pytest.mark.parametrize(("fault", "match"), [
    ({"status": 500, "times": 3}, r"after 3 attempts.*HTTP 500"),
    ({"status": None, "truncate": True, "times": 3}, r"not valid JSON"),
    ({"status": 200, "body": "<html><title>Invalid Key</title></html>"}, r"HTML page"),
    ({"status": 400, "body": "error: unknown variable 'X'"}, r"unknown variable"),
])
def test_errors_are_never_cached(server, cache, fault, match):
    server.inject(**fault)
    with pytest.raises(CensusApiError, match=match):
        _pull(_client(server, cache), "county")
    assert _files(cache) == []


def test_no_content_is_not_cached(server, cache):
    with _client(server, cache) as client, pytest.raises(CensusApiError, match=r"HTTP 204"):
        client.get_table(2024, "acs/acs5", ["B01003_001E"], "tract", state="99", county="777")
    assert _files(cache) == []


def test_the_key_never_reaches_the_cache(server, cache):
    _pull(_client(server, cache, max_workers=4))
    _pull(_client(server, cache), "county")
    files = _files(cache)
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in (KEY, quote(KEY, safe=""), KEY[:16]):
            assert secret not in text and secret not in str(path)
        assert "key=" not in text.lower() and "key" not in json.loads(text)["request"]
    assert not list(cache.rglob(".part-*"))  # temporary files were renamed into place


def test_cache_file_layout_and_content(server, cache):
    _pull(_client(server, cache), "county")
    files = _files(cache)
    assert {p.relative_to(cache).parent.as_posix() for p in files} == {
        "2024/acs/acs5/county", "2024/acs/acs5/subject/county", "2024/acs/acs5/profile/county"}
    assert all(re.fullmatch(r"[0-9a-f]{64}\.json", p.name) for p in files)
    entry = json.loads(next(p for p in files if "subject" in p.parts).read_text())
    assert entry["format"] == "sdoh-census-cache/1"
    state = entry["rows"][1][-2]
    assert state in STATES
    assert entry["request"] == {
        "service": "127.0.0.1/data", "year": 2024, "dataset": "acs/acs5/subject",
        "get": ["S1701_C03_001E", "S1701_C03_001M", "S2701_C05_001E", "S2701_C05_001M"],
        "predicates": [["for", "county:*"], ["in", f"state:{state}"]],
    }
    assert entry["rows"][0] == [*entry["request"]["get"], "state", "county"]


def test_a_different_request_is_a_miss(server, cache):
    _pull(_client(server, cache), "county")
    server.requests.clear()
    with _client(server, cache) as client:
        get_acs("county", VARIABLES, 2024, "99", county="001", client=client)
        assert len(server.requests) == 4  # another `for` predicate
        get_acs("tract", ["B01003_001"], 2024, "99", client=client)
        assert len(server.requests) == 5  # another level and chunk
        get_acs("tract", ["B01003_001"], 2024, "99", client=client)
        assert len(server.requests) == 5


def test_another_host_does_not_share_entries(server, cache):
    _pull(_client(server, cache), "county")
    server.requests.clear()
    other = CensusClient(base_url=server.base_url.replace("127.0.0.1", "localhost"),
                         api_key=KEY, cache_dir=cache, progress=False)
    _pull(other, "county")
    assert len(server.requests) == N_REQUESTS


def test_a_corrupt_cache_file_is_fetched_again(server, cache, caplog):
    _pull(_client(server, cache), "county")
    broken = _files(cache)[0]
    broken.write_text('{"format": "sdoh-census-cache/1", "rows": [["trunc', encoding="utf-8")
    server.requests.clear()
    with caplog.at_level(logging.WARNING):
        _pull(_client(server, cache), "county")
    assert len(server.requests) == 1
    assert "ignoring unreadable cache file" in caplog.text
    json.loads(broken.read_text())  # rewritten whole


def test_environment_folder_and_explicit_argument(server, cache, tmp_path, monkeypatch):
    from_env = tmp_path / "from_env"
    monkeypatch.setenv(CACHE_ENV, str(from_env))
    assert CensusClient().cache_dir == from_env
    assert CensusClient(cache_dir=cache).cache_dir == cache  # explicit wins
    assert CensusClient(cache_dir=None).cache_dir is None  # explicit None: no cache at all
    _pull(CensusClient(base_url=server.base_url, api_key=KEY, progress=False), "county")
    assert len(_files(from_env)) == N_REQUESTS
    _pull(_client(server, None), "county")
    assert len(server.requests) == 2 * N_REQUESTS
    monkeypatch.delenv(CACHE_ENV)
    assert CensusClient().cache_dir is None


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"cache_dir": 3}, TypeError, r"cache_dir must be a folder path or None"),
    ({"max_workers": 0}, ValueError, r"max_workers must be an int >= 1"),
    ({"progress": "yes"}, TypeError, r"progress must be True, False or None"),
])
def test_client_rejects_bad_cache_and_pool_settings(kw, error, match):
    with pytest.raises(error, match=match):
        CensusClient(**kw)


def test_progress_bar_and_logging(server, cache, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="ingestion.sources.census_api"):
        _pull(_client(server, cache, progress=True), "county")
    assert "ACS 2024 county" in capsys.readouterr().err  # the tqdm bar, on stderr
    assert re.search(r"ACS 2024 county: 8 request\(s\), 0 from the cache", caplog.text)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ingestion.sources.census_api"):
        _pull(_client(server, cache), "county")
    assert re.search(r"8 request\(s\), 8 from the cache, 0 to fetch", caplog.text)
    assert capsys.readouterr().err == ""


def test_progress_is_logged_without_a_bar(tmp_path, caplog):
    states = ["01", "02", "04", "05", "06", "08", "09", "10", "11", "12"]
    with CensusReplayServer(mixed_tree(tmp_path / "ten", states)) as ten:
        client = CensusClient(base_url=ten.base_url, cache_dir=None, progress=False,
                              max_workers=3)
        with client, caplog.at_level(logging.INFO, logger="ingestion.sources.census_api"):
            get_acs("tract", ["B01003_001"], 2024, states, client=client)
    steps = re.findall(r"ACS 2024 tract: fetched (\d+) of 10", caplog.text)
    assert [int(s) for s in steps] == list(range(1, 11))
    assert "ACS 2024 tract: fetched 10 request(s) in" in caplog.text
