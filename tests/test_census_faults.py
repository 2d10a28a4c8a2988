"""Census-side faults end in a retry that succeeds or a clear error, never in wrong data.

Every fault goes through the real `CensusClient` and a local `CensusReplayServer` whose fault
mode alters one answer (or several, for a persistent fault): statuses, stalls, resets,
truncated, empty or HTML bodies, and tables with a column dropped, a geography repeated with
another value, one added that nobody asked for or one left out. For each the test checks the
outcome, that the cache holds only answers equal to the clean ones, and that a clean rerun
succeeds. The missing-column and conflicting-duplicate cases also go through ``sdoh ingest
acs``: exit 1, the message, nothing published. Backoff and timeouts are tiny client options;
no test sleeps or patches a process-wide function.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from test_census_api import MANY, _synthetic_tree

from ingestion.cli import sdoh
from ingestion.core.errors import CensusApiError
from ingestion.core.workspace import Workspace
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import CensusClient, get_acs
from sdoh_sources import load_catalog

# The module (its name is shadowed by the `ingest` group in ingestion.cli): its `_client` is
# swapped for a real client with tiny backoff, so the CLI tests do not wait out real backoff.
ingest_cli = importlib.import_module("ingestion.cli.ingest")
KEY = "0123456789abcdef0123456789abcdef01234567"
VARIABLES = ["B01003_001"]  # one request: the fault always hits it


def _client(server: CensusReplayServer, cache: Path | None, **kw) -> CensusClient:
    settings = {"api_key": KEY, "timeout": 5.0, "max_retries": 3, "backoff": 0.001,
                "max_delay": 0.01, "cache_dir": cache, "progress": False, "max_workers": 1,
                **kw}
    return CensusClient(base_url=server.base_url, **settings)


def _pull(server: CensusReplayServer, cache: Path | None, variables=VARIABLES,
          **kw) -> pd.DataFrame:
    with _client(server, cache, **kw) as client:
        return get_acs("tract", variables, 2024, "99", client=client)


def _cached(cache: Path) -> dict[str, list]:
    """Every cache file's table, by its path under the cache folder."""
    return {str(p.relative_to(cache)): json.loads(p.read_text())["rows"]
            for p in sorted(cache.rglob("*.json"))}


@pytest.fixture
def server(tmp_path):
    with CensusReplayServer(_synthetic_tree(tmp_path / "replay")) as srv:
        yield srv


@pytest.fixture
def clean(server, tmp_path):
    """What a fault-free pull returns, and the cache it leaves."""
    cache = tmp_path / "clean-cache"
    frame = _pull(server, cache)
    server.requests.clear()
    return frame, _cached(cache)


def _assert_cache_holds_only_clean_answers(cache: Path, clean_cache: dict[str, list]) -> None:
    held = _cached(cache) if cache.exists() else {}
    assert all(clean_cache[name] == rows for name, rows in held.items()), held


# A stalled answer comes after STALL seconds; the client gives up after TIMEOUT (stall cases
# only: the others keep a timeout no loaded machine reaches).
STALL, TIMEOUT = 2.0, 0.5


def _timeout(fault: str) -> float:
    return TIMEOUT if fault.startswith("stall") else 5.0


# Transient faults: the next answer misbehaves once, the retry gets the real one.
TRANSIENT = {
    "429 with Retry-After": {"status": 429, "headers": {"Retry-After": "0"}},
    "500": {"status": 500},
    "503": {"status": 503},
    "connection reset": {"status": None, "alter": "reset"},
    "stall past the timeout": {"status": None, "delay": STALL},
    "truncated JSON": {"status": None, "truncate": True},
    "empty body": {"status": None, "alter": "empty_body"},
    "missing E column": {"status": None, "alter": "drop_column", "column": "B01003_001E"},
    "missing M column": {"status": None, "alter": "drop_column", "column": "B01003_001M"},
    "conflicting duplicate": {"status": None, "alter": "conflicting_duplicate",
                              "column": "B01003_001E"},
    "extra geography": {"status": None, "alter": "extra_geography"},
}


@pytest.mark.parametrize("fault", list(TRANSIENT), ids=list(TRANSIENT))
def test_a_transient_fault_is_retried_and_the_pull_succeeds(server, clean, tmp_path, fault):
    frame, clean_cache = clean
    server.inject(**TRANSIENT[fault])
    cache = tmp_path / "cache"
    pd.testing.assert_frame_equal(_pull(server, cache, timeout=_timeout(fault)), frame)
    assert len(server.requests) == 2  # the faulty answer, then the good one
    assert _cached(cache) == clean_cache


# Persistent faults: every attempt misbehaves; the error names the cause, URL and next step.
PERSISTENT = {
    "500": ({"status": 500}, r"after 4 attempts: HTTP 500: error: Internal Server Error "
                             r"\(GET http://127\.0\.0\.1:\d+/data/2024/acs/acs5\?get=B01003_001E,"
                             r"B01003_001M&for=tract:\*&in=state:99&key=REDACTED\)\. The Census "
                             r"Data API is failing, slow or rate-limiting: try again later"),
    "503": ({"status": 503}, r"after 4 attempts: HTTP 503: "),
    "429": ({"status": 429, "headers": {"Retry-After": "0"}}, r"after 4 attempts: HTTP 429"),
    "connection reset": ({"status": None, "alter": "reset"},
                         r"after 4 attempts: the connection to 127\.0\.0\.1:\d+ was reset or "
                         r"closed before a full answer \(GET .*\)\. Check the network connection"),
    "stall past the timeout": ({"status": None, "delay": STALL},
                               r"after 4 attempts: timed out after 0\.5 s \(ReadTimeout\) "
                               r"\(GET .*\)\. The Census Data API is failing, slow or "
                               r"rate-limiting"),
    "truncated JSON": ({"status": None, "truncate": True},
                       r"after 3 attempts: HTTP 200 but the body is not valid JSON"),
    "empty body": ({"status": None, "alter": "empty_body"},
                   r"after 3 attempts: HTTP 200 with an empty body"),
    "HTML with 200": ({"status": 200, "body": "<html><title>Proxy login</title></html>"},
                      r"failed: HTTP 200 with an HTML page instead of JSON: Proxy login \(GET .*\)\. "
                      r"Check the year, dataset, variables, geography and API key"),
    "missing E column": ({"status": None, "alter": "drop_column", "column": "B01003_001E"},
                         r"after 3 attempts: HTTP 200 but the answer lacks the requested "
                         r"column\(s\) \['B01003_001E'\] \(GET http://127\.0\.0\.1:\d+/data/2024/"
                         r"acs/acs5\?get=B01003_001E,B01003_001M&for=tract:\*&in=state:99&key="
                         r"REDACTED\)\. Nothing was cached: run again to fetch afresh; if it "
                         r"persists, a proxy or mirror"),
    "missing M column": ({"status": None, "alter": "drop_column", "column": "B01003_001M"},
                         r"lacks the requested column\(s\) \['B01003_001M'\]"),
    "conflicting duplicate": ({"status": None, "alter": "conflicting_duplicate",
                               "column": "B01003_001E"},
                              r"the answer holds GEOID 99001000100 twice with different values "
                              r"\(B01003_001E: '1000' and '1'\)"),
    "extra geography": ({"status": None, "alter": "extra_geography"},
                        r"the answer holds GEOID 00001000100, which was not asked for \(state 00 "
                        r"is outside state:99\)"),
}


@pytest.mark.parametrize("fault", list(PERSISTENT), ids=list(PERSISTENT))
def test_a_persistent_fault_is_a_clear_error_and_nothing_bad_is_cached(server, clean, tmp_path,
                                                                       fault):
    frame, clean_cache = clean
    kw, match = PERSISTENT[fault]
    server.inject(**kw, times=10)
    cache = tmp_path / "cache"
    with pytest.raises(CensusApiError, match=match) as caught:
        _pull(server, cache, timeout=_timeout(fault))
    assert KEY not in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600
    _assert_cache_holds_only_clean_answers(cache, clean_cache)
    with CensusReplayServer(_synthetic_tree(tmp_path / "again")) as healthy:  # a clean rerun
        pd.testing.assert_frame_equal(_pull(healthy, cache), frame)
    assert _cached(cache) == clean_cache


def test_a_cache_file_that_fails_the_checks_is_ignored_and_fetched_again(server, clean, tmp_path,
                                                                         caplog):
    frame, clean_cache = clean
    cache = tmp_path / "cache"
    _pull(server, cache)
    [path] = cache.rglob("*.json")
    entry = json.loads(path.read_text())
    entry["rows"] = [[v for v, name in zip(row, entry["rows"][0], strict=True)
                      if name != "B01003_001M"] for row in entry["rows"]]
    path.write_text(json.dumps(entry))  # a well-formed table that lacks a requested column
    server.requests.clear()
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.census_api"):
        pd.testing.assert_frame_equal(_pull(server, cache), frame)
    assert len(server.requests) == 1
    assert re.search(r"ignoring cache file .*: the answer lacks the requested column\(s\) "
                     r"\['B01003_001M'\]; fetching again", caplog.text)
    assert _cached(cache) == clean_cache


def test_identical_repeated_rows_are_tolerated(server, clean, tmp_path):
    frame, _ = clean
    tree = tmp_path / "twice"
    _synthetic_tree(tree)
    table = tree / "2024" / "acs" / "acs5" / "tract.json"
    rows = json.loads(table.read_text())
    table.write_text(json.dumps([*rows, rows[1]]))
    with CensusReplayServer(tree) as twice:
        pd.testing.assert_frame_equal(_pull(twice, None), frame)
        assert len(twice.requests) == 1


def test_a_county_asked_for_but_not_answered_is_an_error(server):
    with _client(server, None) as client, pytest.raises(
            CensusApiError, match=r"the answer lacks county \['005'\] asked for by "
                                  r"for=county:001,005 \(if a code does not exist in 2024, leave "
                                  r"it out\)"):
        client.get_table(2024, "acs/acs5", ["B01003_001E"], "county", state="99",
                         county=["001", "005"])


def test_chunks_of_a_split_request_that_disagree_are_fetched_again(server, tmp_path, caplog):
    variables = ["B01003_001", *MANY]  # 62 API variables: two requests joined on GEOID
    frame = _pull(server, None, variables)
    server.requests.clear()
    server.inject(None, alter="drop_geography")  # the first chunk lacks a tract
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.census_api"):
        pd.testing.assert_frame_equal(_pull(server, cache, variables), frame)
    assert len(server.requests) == 4  # both chunks, then both again without the cache
    assert "the answers for for=tract:*&in=state:99 disagree on geographies; fetching them " \
           "again" in caplog.text


def test_chunks_that_keep_disagreeing_are_an_error_and_leave_no_cache(server, tmp_path):
    variables = ["B01003_001", *MANY]
    server.inject(None, alter="drop_geography")
    server.inject(None, times=1)  # the second chunk answers normally
    server.inject(None, alter="drop_geography")
    cache = tmp_path / "cache"
    with pytest.raises(CensusApiError, match=r"answers disagree: GEOID 99003000400 is in the "
                                             r"answer of acs/acs5 get=B99001_025E,\S+,\.\.\.\("
                                             r"\+8 more\) but not in that of acs/acs5 get="
                                             r"B01003_001E,"):
        _pull(server, cache, variables)
    assert not list(cache.rglob("*.json"))


def _unreachable_client(base_url: str, **kw) -> CensusClient:
    return CensusClient(base_url=base_url, api_key=KEY, timeout=0.5, max_retries=3,
                        backoff=0.001, max_delay=0.01, cache_dir=None, progress=False,
                        max_workers=4, **kw)


@pytest.mark.parametrize(("base_url", "cause"), [
    ("https://api.census.invalid/data", r"cannot resolve api\.census\.invalid: no network or DNS "
                                        r"failure"),
    ("closed", r"cannot connect to 127\.0\.0\.1:\d+: connection refused"),
])
def test_no_network_is_one_short_error_and_one_warning(tmp_path, caplog, base_url, cause):
    if base_url == "closed":
        stopped = CensusReplayServer(tmp_path)
        base_url = stopped.base_url
        stopped.stop()
    many = ["B01003_001", *MANY, *[f"B99002_{i:03d}" for i in range(1, 60)]]  # four requests
    with caplog.at_level(logging.INFO, logger="ingestion.sources.census_api"), pytest.raises(
            CensusApiError, match=rf"^A request to the Census Data API failed after 4 "
                                  rf"attempts: {cause}"
                                  rf".*\. Check the network connection .* --cache-dir .* "
                                  rf"--base-url") as caught, _unreachable_client(base_url) as client:
        get_acs("tract", many, 2024, "99", client=client)
    message = str(caught.value)
    assert len(message) < 700 and "\n" not in message and KEY not in message
    assert "...(+" in message  # the long get= list is cut
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and re.match(rf"Census API: {cause}", warnings[0].getMessage())
    assert len(caplog.text) < 2000  # what `sdoh` shows without -v: no wall of retries


def test_no_network_through_the_cli_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_cli, "_client", lambda base_url, cache_dir, max_workers:
                        _unreachable_client(base_url))
    result = CliRunner().invoke(sdoh, [
        "ingest", "acs", "--vintage", "2021", "--state", "DE", "--level", "tract",
        "--base-url", "https://api.census.invalid/data", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    *logged, error = result.output.splitlines()
    assert error.startswith("error: A request to the Census Data API failed after 4 attempts: "
                            "cannot resolve api.census.invalid")
    assert len(logged) <= 2 and len(result.output) < 2000  # the cause once, no wall of retries


# --------------------------------------------------------------------------- through the CLI

@pytest.fixture(scope="module")
def region_tree(tmp_path_factory):
    from ingestion.demo.region import generate_demo_region

    region = tmp_path_factory.mktemp("region")
    generate_demo_region(region, n_patients=50)
    return region / "census_api"


def _first_variable() -> str:
    """The first API variable of the first request of `sdoh ingest acs --level tract`."""
    return sorted(load_catalog().acs.variables_for("tract", 2021))[0] + "E"


@pytest.mark.parametrize(("fault", "match"), [
    ({"alter": "drop_column", "column": "first"},
     r"HTTP 200 but the answer lacks the requested column\(s\) \['{first}'\]"),
    ({"alter": "conflicting_duplicate", "column": "first"},
     r"HTTP 200 but the answer holds GEOID 99\d{{9}} twice with different values \({first}: "),
], ids=["missing E column", "conflicting duplicate"])
def test_ingest_acs_fails_clearly_and_publishes_nothing(region_tree, tmp_path, monkeypatch,
                                                         fault, match):
    first = _first_variable()
    monkeypatch.setattr(ingest_cli, "_client", lambda base_url, cache_dir, max_workers:
                        CensusClient(base_url=base_url, cache_dir=cache_dir, backoff=0.001,
                                     max_delay=0.01, timeout=5.0, max_workers=max_workers,
                                     progress=False))
    ws, cache = tmp_path / "ws", tmp_path / "cache"
    args = ["ingest", "acs", "--vintage", "2021", "--state", "99", "--level", "tract",
            "--max-workers", "1", "--cache-dir", str(cache), "--workspace", str(ws)]
    with CensusReplayServer(region_tree) as server:
        server.inject(None, **{**fault, "column": first}, times=10)
        result = CliRunner().invoke(sdoh, [*args, "--base-url", server.base_url])
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert re.search(r"error: A request to the Census Data API failed after 3 attempts: "
                         + match.format(first=re.escape(first)), result.output), result.output
        assert "Nothing was cached" in result.output
        assert not Workspace(ws).published_dir("acs_tract").exists()
    with CensusReplayServer(region_tree) as healthy:  # a clean rerun on the same cache
        rerun = CliRunner().invoke(sdoh, [*args, "--base-url", healthy.base_url])
    assert rerun.exit_code == 0, rerun.output
    assert len(pd.read_parquet(Workspace(ws).published_dir("acs_tract"))) > 0


@pytest.mark.parametrize(("args", "match"), [
    (["--vintage", "2030", "--state", "DE"], r"no release of 'acs5' for vintage 2030 in the "
                                             r"calendar; known: \[2014, .*2024\]"),
    (["--vintage", "2008", "--state", "DE"], r"vintage 2008 .*known: \[2014"),
    (["--vintage", "2021", "--vintage", "2030", "--state", "DE"], r"vintage 2030"),
    (["--vintage", "2021", "--state", "XX"], r"Invalid value for '--state': unknown state 'XX'; "
                                             r"expected a 2-digit FIPS code .* a postal code "
                                             r"\('DE'\) or a state name, or `all`"),
    (["--vintage", "2021", "--state", "all", "--state", "DE"], r"`all` cannot be combined"),
    (["--vintage", "2021", "--state", "DE", "--county", "1234"],
     r"Invalid value for '--county': unknown county '1234'"),
])
def test_ingest_acs_refuses_bad_arguments_before_any_request(region_tree, tmp_path, args,
                                                             match):
    with CensusReplayServer(region_tree) as server:
        result = CliRunner().invoke(sdoh, ["ingest", "acs", *args, "--level", "tract",
                                           "--base-url", server.base_url,
                                           "--workspace", str(tmp_path / "ws")])
        assert server.requests == []
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output
    assert re.search(match, result.output), result.output


@pytest.mark.parametrize("command", [["svi", "--release", "2020", "--reference", "state"],
                                     ["adi-acs", "--vintage", "2022", "--reference", "state"]])
def test_other_pulling_commands_refuse_an_unknown_state(tmp_path, command):
    result = CliRunner().invoke(sdoh, ["ingest", *command, "--state", "XX",
                                       "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--state': unknown state 'XX'" in result.output


def test_plain_http_to_another_host_is_refused_before_any_request(tmp_path):
    result = CliRunner().invoke(sdoh, [
        "ingest", "acs", "--vintage", "2021", "--state", "DE", "--level", "tract",
        "--base-url", "http://api.census.gov/data", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: base_url 'http://api.census.gov/data' is plain http to a host that is not " \
           "loopback" in result.output
