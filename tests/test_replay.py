"""The Census API replay server: projection, filtering, errors and fault injection over HTTP."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from ingestion.demo.replay import CensusReplayServer

HEADER = ["NAME", "B01003_001E", "B01003_001M", "B19013_001E", "state", "county", "tract"]
ROWS = [
    ["Census Tract 1; Synthetic County; Synthetic State", "1000", "50", "52000", "99", "001",
     "000100"],
    ["Census Tract 2; Synthetic County; Synthetic State", "2000", "-555555555", None, "99",
     "001", "000200"],
    ["Census Tract 3; Other County; Synthetic State", "3000", "70", "-666666666", "99", "003",
     "000300"],
]


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "2024" / "acs" / "acs5"
    folder.mkdir(parents=True)
    (folder / "tract.json").write_text(json.dumps([HEADER, *ROWS]), encoding="utf-8")
    (folder / "county.json").write_text(json.dumps(
        [["B01003_001E", "state", "county"], ["3000", "99", "001"], ["3000", "99", "003"]]))
    return tmp_path


@pytest.fixture
def server(root):
    with CensusReplayServer(root) as srv:
        yield srv


def _get(server: CensusReplayServer, query: str, *, path: str = "2024/acs/acs5",
         timeout: float = 5.0) -> requests.Response:
    return requests.get(f"{server.base_url}/{path}?{query}", timeout=timeout)


def test_base_url_is_local_and_ephemeral(server):
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/data")


def test_projection_keeps_requested_order_then_geography(server):
    response = _get(server, "get=B19013_001E,NAME&for=tract:*&in=state:99")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.text.startswith('[["B19013_001E","NAME","state","county","tract"],\n')
    assert response.json() == [["B19013_001E", "NAME", "state", "county", "tract"],
                               *[[r[3], r[0], *r[4:]] for r in ROWS]]


@pytest.mark.parametrize(("query", "tracts"), [
    ("for=tract:*&in=state:99", ["000100", "000200", "000300"]),
    ("for=tract:*&in=state:99&in=county:003", ["000300"]),
    ("for=tract:*&in=state:99+county:001", ["000100", "000200"]),
    ("for=tract:*&in=state:99%20county:003", ["000300"]),
    ("for=tract:*&in=state:99+county:*", ["000100", "000200", "000300"]),
    ("for=tract:000100,000300&in=state:99", ["000100", "000300"]),
    ("for=tract:*&in=state:99&in=county:001,003", ["000100", "000200", "000300"]),
])
def test_filtering_by_for_and_in(server, query, tracts):
    response = _get(server, f"get=B01003_001E&{query}")
    assert response.status_code == 200
    assert [row[-1] for row in response.json()[1:]] == tracts


def test_null_values_are_served_as_json_null(server):
    body = _get(server, "get=B19013_001E&for=tract:000200&in=state:99").json()
    assert body == [["B19013_001E", "state", "county", "tract"], [None, "99", "001", "000200"]]


def test_no_rows_is_204_without_body(server):
    response = _get(server, "get=B01003_001E&for=tract:*&in=state:98")
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(("query", "path", "status", "body"), [
    ("get=B01003_001E,B99999_001E&for=tract:*&in=state:99", "2024/acs/acs5", 400,
     "error: unknown variable 'B99999_001E'"),
    ("get=" + ",".join(f"B01001_{i:03d}E" for i in range(1, 52)) + "&for=tract:*",
     "2024/acs/acs5", 400, "error: 'get' is limited to 50 variables"),
    ("get=B01003_001E&for=block+group:*&in=state:99+county:001", "2024/acs/acs5", 400,
     "error: unknown/unsupported geography heirarchy"),
    ("get=B01003_001E&for=county:*&in=state:99+tract:000100", "2024/acs/acs5", 400,
     "error: unknown/unsupported geography heirarchy"),
    ("get=B01003_001E&for=planet:*", "2024/acs/acs5", 400,
     "error: unknown/unsupported geography heirarchy"),
    ("get=B01003_001E&for=tract:*&in=state:99", "2024/acs/acs1", 404,
     "error: unknown dataset '/data/2024/acs/acs1'"),
    ("get=B01003_001E&for=tract:*", "2024/../../etc", 404, "error: unknown dataset"),
    ("for=tract:*&in=state:99", "2024/acs/acs5", 400, "error: missing 'get' parameter"),
    ("get=B01003_001E", "2024/acs/acs5", 400, "error: invalid 'for' or 'in' clause"),
])
def test_errors_answer_like_the_api(server, query, path, status, body):
    response = _get(server, query, path=path)
    assert response.status_code == status
    assert response.text.startswith(body)
    assert response.headers["Content-Type"].startswith("text/plain")


def test_requests_are_recorded_with_the_key_redacted(server):
    _get(server, "get=NAME&for=tract:*&in=state:99&key=s3cr3t-k3y&x=1")
    _get(server, "key=another&get=NAME&for=county:*")
    assert server.requests == [
        "/data/2024/acs/acs5?get=NAME&for=tract:*&in=state:99&key=REDACTED&x=1",
        "/data/2024/acs/acs5?key=REDACTED&get=NAME&for=county:*",
    ]


def test_api_key_mode_redirects_to_key_pages(root):
    with CensusReplayServer(root, api_key="right-key-123") as server:
        ok = _get(server, "get=B01003_001E&for=county:*&key=right-key-123")
        wrong = _get(server, "get=B01003_001E&for=county:*&key=wrong")
        missing = _get(server, "get=B01003_001E&for=county:*")
    assert ok.status_code == 200
    for response, title in ((wrong, "Invalid Key"), (missing, "Missing Key")):
        assert response.status_code == 200 and response.history[0].status_code == 302
        assert f"<title>{title}</title>" in response.text
        assert response.headers["Content-Type"].startswith("text/html")


# --------------------------------------------------------------------------- fault injection

QUERY = "get=B01003_001E&for=tract:*&in=state:99"
ALTERED_QUERY = "get=B01003_001E,B01003_001M&for=tract:*&in=state:99"
ALTERED_HEADER = ["B01003_001E", "B01003_001M", "state", "county", "tract"]
ALTERED_ROWS = [[*r[1:3], *r[4:]] for r in ROWS]


def test_faults_apply_in_order_then_normal_answers_resume(server):
    server.inject(429, headers={"Retry-After": "3"})
    server.inject(500, times=2)
    statuses = [_get(server, QUERY) for _ in range(4)]
    assert [r.status_code for r in statuses] == [429, 500, 500, 200]
    assert statuses[0].headers["Retry-After"] == "3"
    assert statuses[0].text.startswith("error: ")
    assert len(server.requests) == 4


def test_injected_html_page_is_served_as_html(server):
    page = "<html><head><title>503 Service Unavailable</title></head></html>"
    server.inject(503, body=page)
    response = _get(server, QUERY)
    assert response.status_code == 503 and response.text == page
    assert response.headers["Content-Type"].startswith("text/html")


def test_truncated_body_is_cut_with_matching_length(server):
    full = _get(server, QUERY).content
    server.inject(None, truncate=True)
    response = _get(server, QUERY)
    assert response.status_code == 200
    assert response.content == full[: len(full) // 2]
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_delay_makes_a_client_time_out(server):
    server.inject(None, delay=0.5)
    with pytest.raises(requests.Timeout):  # the answer comes after the client gave up
        _get(server, QUERY, timeout=0.1)
    assert _get(server, QUERY).status_code == 200  # the next request is answered at once


@pytest.mark.parametrize(("alter", "column", "expected"), [
    ("drop_column", "B01003_001M", [["B01003_001E", "state", "county", "tract"],
                                    *[[r[0], *r[2:]] for r in ALTERED_ROWS]]),
    ("conflicting_duplicate", "B01003_001E",
     [ALTERED_HEADER, *ALTERED_ROWS, ["1", *ALTERED_ROWS[0][1:]]]),
    ("extra_geography", None,
     [ALTERED_HEADER, *ALTERED_ROWS, [*ALTERED_ROWS[0][:2], "00", *ALTERED_ROWS[0][3:]]]),
    ("drop_geography", None, [ALTERED_HEADER, *ALTERED_ROWS[:-1]]),
])
def test_an_answer_can_be_altered_once(server, alter, column, expected):
    server.inject(None, alter=alter, column=column)
    response = _get(server, ALTERED_QUERY)
    assert response.status_code == 200 and response.json() == expected
    assert _get(server, ALTERED_QUERY).json() == [ALTERED_HEADER, *ALTERED_ROWS]  # then normal


def test_an_empty_body_with_200(server):
    server.inject(None, alter="empty_body")
    response = _get(server, QUERY)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "0"


def test_a_reset_connection_gets_no_answer(server):
    server.inject(None, alter="reset")
    with pytest.raises(requests.ConnectionError):
        _get(server, QUERY)
    assert _get(server, QUERY).status_code == 200


@pytest.mark.parametrize(("kw", "match"), [
    ({"times": 0}, r"times must be >= 1"),
    ({"delay": -1.0}, r"delay >= 0, got 1, -1\.0"),
    ({"alter": "garble"}, r"alter must be one of \['drop_column'"),
])
def test_inject_rejects_bad_faults(server, kw, match):
    with pytest.raises(ValueError, match=match):
        server.inject(500, **kw)


def test_latency_delays_every_answer(root):
    with CensusReplayServer(root, latency=0.2) as server:
        start = time.monotonic()
        assert _get(server, QUERY).status_code == 200
        assert _get(server, QUERY).status_code == 200
        assert time.monotonic() - start >= 0.4
    with pytest.raises(ValueError, match=r"latency must be >= 0 seconds, got -1"):
        CensusReplayServer(root, latency=-1)


def test_root_must_be_a_folder(tmp_path):
    with pytest.raises(ValueError, match=r"replay root '.*nowhere' is not a folder"):
        CensusReplayServer(tmp_path / "nowhere")


def test_stop_is_idempotent_and_closes_the_port(root):
    server = CensusReplayServer(root)
    url = server.base_url
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/2024/acs/acs5?{QUERY}", timeout=1)


def test_file_changes_are_picked_up(server, root):
    assert len(_get(server, QUERY).json()) == 4
    path = root / "2024" / "acs" / "acs5" / "tract.json"
    path.write_text(json.dumps([HEADER, ROWS[0]]))
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    assert len(_get(server, QUERY).json()) == 2


# --------------------------------------------------------------------------- hierarchy, datasets

@pytest.fixture
def nested(tmp_path):
    """Detailed tables down to block groups, a subject table down to tracts (as the API has)."""
    detailed = tmp_path / "2024" / "acs" / "acs5"
    subject = detailed / "subject"
    subject.mkdir(parents=True)
    (detailed / "block_group.json").write_text(json.dumps(
        [["B01003_001E", "state", "county", "tract", "block group"],
         ["400", "99", "001", "000100", "1"], ["600", "99", "003", "000300", "2"]]))
    (detailed / "tract.json").write_text(json.dumps([HEADER, *ROWS]))
    (detailed / "zcta.json").write_text(json.dumps(
        [["B01003_001E", "zip code tabulation area"], ["500", "99001"]]))
    (subject / "tract.json").write_text(json.dumps(
        [["S1701_C03_001E", "S1701_C03_001M", "state", "county", "tract"],
         ["12.5", "3.1", "99", "001", "000100"], ["-888888888", "-222222222", "99", "003",
                                                  "000300"]]))
    with CensusReplayServer(tmp_path) as server:
        yield server


@pytest.mark.parametrize(("query", "rows"), [
    ("for=block+group:*&in=state:99&in=county:*&in=tract:*", 2),
    ("for=block+group:*&in=state:99&in=county:*", 2),  # tract may be left out when `*`
    ("for=block+group:*&in=state:99+county:003", 1),
    ("for=block+group:*&in=state:99&in=county:001&in=tract:000100", 1),
    ("for=tract:*&in=state:99", 3),
    ("for=tract:*&in=state:99&in=county:*", 3),
    ("for=zip+code+tabulation+area:*", 1),
])
def test_hierarchy_the_api_accepts(nested, query, rows):
    response = _get(nested, f"get=B01003_001E&{query}")
    assert response.status_code == 200, response.text
    assert len(response.json()) == rows + 1


@pytest.mark.parametrize("query", [
    "for=block+group:*&in=state:99",  # a block group needs a county (or county:*)
    "for=block+group:*&in=state:*&in=county:*",  # the state cannot be a wildcard
    "for=tract:*",  # a tract needs a state
    "for=tract:*&in=state:*",
    "for=tract:*&in=county:001",
    "for=tract:*&in=state:99&in=state:98",
    "for=zip+code+tabulation+area:*&in=state:99",  # not nested in states since 2019
])
def test_hierarchy_the_api_rejects(nested, query):
    response = _get(nested, f"get=B01003_001E&{query}")
    assert response.status_code == 400
    assert response.text == "error: unknown/unsupported geography heirarchy"


def test_subject_dataset_is_served_and_knows_only_its_variables(nested):
    path = "2024/acs/acs5/subject"
    ok = _get(nested, "get=S1701_C03_001E,S1701_C03_001M&for=tract:*&in=state:99", path=path)
    assert ok.json() == [["S1701_C03_001E", "S1701_C03_001M", "state", "county", "tract"],
                         ["12.5", "3.1", "99", "001", "000100"],
                         ["-888888888", "-222222222", "99", "003", "000300"]]
    wrong = _get(nested, "get=B01003_001E&for=tract:*&in=state:99", path=path)
    assert (wrong.status_code, wrong.text) == (400, "error: unknown variable 'B01003_001E'")
    elsewhere = _get(nested, "get=S1701_C03_001E&for=tract:*&in=state:99")
    assert (elsewhere.status_code, elsewhere.text) == (
        400, "error: unknown variable 'S1701_C03_001E'")
    no_bg = _get(nested, "get=S1701_C03_001E&for=block+group:*&in=state:99&in=county:*",
                 path=path)
    assert (no_bg.status_code, no_bg.text) == (400, "error: unknown/unsupported geography "
                                                    "heirarchy")


def test_a_folder_without_level_files_is_no_dataset(nested):
    response = _get(nested, "get=B01003_001E&for=tract:*&in=state:99", path="2024/acs")
    assert response.status_code == 404
    assert response.text == "error: unknown dataset '/data/2024/acs'"
