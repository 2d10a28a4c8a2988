"""The Census Geocoder batch client against a local server speaking the service's formats.

The server below takes the real request (a multipart form with ``addressFile`` or
``coordinatesFile``, a CSV without header, ``benchmark`` and ``vintage``) and answers like the
service: a CSV without header, every field quoted, rows in reverse order, ``Match`` rows with
a quoted ``"lon,lat"`` pair, bare ``No_Match`` and ``Tie`` rows. Every address here is made
up. The conformance tests at the end read real coordinates-batch answers from
../shared/data/real/census_geocoder (never copied into the repository).
"""

from __future__ import annotations

import collections
import csv
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from ingestion.cli import sdoh
from ingestion.geo import linking
from ingestion.sources.geocoder import (
    ADDRESS_BATCH_COLUMNS,
    GEOCODE_COLUMNS,
    GEOCODE_MISSING_REASONS,
    MAX_BATCH_SIZE,
    PO_BOX_PATTERN,
    POINT_COLUMNS,
    CensusGeocoder,
    GeocoderConsentRequired,
    GeocoderError,
    apply_geocodes,
    geocode_addresses,
    is_po_box,
    parse_address_batch,
    parse_coordinates_batch,
)
from sdoh_sources import load_catalog
from sdoh_sources.errors import SdohError

# --------------------------------------------------------------------------- the local server

# Street (upper case) -> (match type, matched address, lon, lat, TIGER line id, side,
# state, county, tract, block). Made-up addresses in made-up places.
GAZETTEER = {
    "100 MAPLE AVE": ("Exact", "100 MAPLE AVE, SPRINGFIELD, XX, 99001", -77.0365, 38.8977,
                      "76225813", "L", "11", "001", "980000", "1034"),
    "200 OAK ST": ("Non_Exact", "200 OAK ST, SPRINGFIELD, XX, 99001", -77.03, 38.9,
                   "76225900", "R", "11", "001", "005802", "2001"),
    "300 ELM ST": ("Exact", "300 ELM ST, SPRINGFIELD, XX, 99002", -77.04, 38.91,
                   "76226001", "L", "11", "001", "005303", "3012"),
    "400 PINE RD": ("Exact", "400 PINE RD, SHELBYVILLE, XX, 99003", -75.16, 39.95,
                    "11110001", "R", "42", "101", "000500", "1000"),
}
TIES = {"700 TWIN OAKS DR"}


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    fields: dict[str, str]
    files: dict[str, tuple[str | None, str]]
    rows: list[list[str]]


@dataclass
class Fault:
    """A misbehaviour for the next ``times`` requests."""

    status: int | None = None
    body: str | None = None
    delay: float = 0.0
    truncate: bool = False
    drop: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class _Handler(BaseHTTPRequestHandler):
    server: _Http

    def do_POST(self):  # noqa: N802 (the http.server API)
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received = _parse_form(self.path, self.headers.get("Content-Type", ""), raw)
        with fake.lock:
            fake.received.append(received)
            fault = fake.faults[0] if fake.faults else None
            if fault is not None:
                fault.times -= 1
                if fault.times == 0:
                    fake.faults.popleft()
        if fake.latency:
            time.sleep(fake.latency)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and (fault.status not in (None, 200) or fault.body is not None):
            status, body = fault.status or 200, fault.body or "error: something went wrong"
            content_type = "text/html" if body.lstrip().startswith("<") else "text/plain"
            payload = body.encode("utf-8")
        else:
            status, payload, content_type = fake.answer(received, drop=fault.drop if fault else 0)
        if fault is not None and fault.truncate:
            payload = payload[: max(1, len(payload) // 2)]
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (fault.headers if fault else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout)

    def log_message(self, format, *args):  # noqa: A002 (inherited name)
        pass


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGeocoder


def _parse_form(path: str, content_type: str, raw: bytes) -> Received:
    """A multipart/form-data body, parsed with the standard library's email parser."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields, files, rows = {}, {}, []
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            value = part.get_payload(decode=True).decode("utf-8")
            if part.get_filename() is not None:
                files[name] = (part.get_filename(), value)
                rows = list(csv.reader(io.StringIO(value)))
            else:
                fields[name] = value
    return Received(path, fields, files, rows)


class FakeGeocoder:
    """A local stand-in for geocoding.geo.census.gov's batch endpoints."""

    def __init__(self, *, coordinates_body: bytes | None = None, encoding: str = "utf-8",
                 latency: float = 0.0) -> None:
        self.received: list[Received] = []
        self.faults: collections.deque[Fault] = collections.deque()
        self.lock = threading.Lock()
        self.coordinates_body = coordinates_body
        self.encoding = encoding
        self.latency = latency
        self._http = _Http(("127.0.0.1", 0), _Handler)
        self._http.fake = self
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/geocoder"

    def inject(self, status: int | None = 500, **kw) -> None:
        self.faults.append(Fault(status=status, **kw))

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def answer(self, received: Received, *, drop: int = 0) -> tuple[int, bytes, str]:
        kind = received.path.removeprefix("/geocoder/")
        if kind == "geographies/coordinatesbatch":
            if "coordinatesFile" not in received.files or "vintage" not in received.fields:
                return 400, b"error: coordinatesFile, benchmark and vintage are required", \
                    "text/plain"
            return 200, self.coordinates_body or b"", "text/plain"
        if kind not in ("geographies/addressbatch", "locations/addressbatch"):
            return 404, b"<html><title>404 Not Found</title></html>", "text/html"
        geographies = kind.startswith("geographies")
        if ("addressFile" not in received.files or "benchmark" not in received.fields
                or (geographies and "vintage" not in received.fields)):
            return 400, b"error: addressFile, benchmark (and vintage) are required", "text/plain"
        if len(received.rows) > MAX_BATCH_SIZE:
            return 400, b"error: more than 10,000 records in the batch file", "text/plain"
        if any(len(r) != 5 for r in received.rows):
            return 400, b"error: every record needs 5 fields", "text/plain"
        acs = received.fields.get("vintage", "").startswith("ACS")
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        answered = received.rows[: len(received.rows) - drop] if drop else received.rows
        for uid, street, city, state, zip_code in reversed(answered):
            echo = f"{street}, {city}, {state}, {zip_code}"
            hit = GAZETTEER.get(street.upper())
            if hit is None:
                writer.writerow([uid, echo, "Tie" if street.upper() in TIES else "No_Match"])
                continue
            kind_, matched, lon, lat, tiger, side, st, co, tract, block = hit
            row = [uid, echo, "Match", kind_, matched, f"{lon},{lat}", tiger, side]
            if geographies:
                row += [st, co, tract, "" if acs else block]
            writer.writerow(row)
        return 200, buffer.getvalue().encode(self.encoding), "text/plain"


@pytest.fixture
def server():
    fake = FakeGeocoder()
    yield fake
    fake.stop()


def _client(server: FakeGeocoder, **kw) -> CensusGeocoder:
    settings = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01, "max_delay": 0.2,
                "max_workers": 1, "progress": False, **kw}
    return CensusGeocoder(base_url=server.base_url, **settings)


@pytest.fixture
def client(server):
    with _client(server) as c:
        yield c


ADDRESSES = pd.DataFrame([
    {"row": 2, "street": "100 Maple Ave", "city": "Springfield", "state": "XX", "zip": "99001"},
    {"row": 3, "street": "200 Oak St", "city": "Springfield", "state": "XX", "zip": "99001"},
    {"row": 4, "street": "999 Nowhere Ln", "city": "Springfield", "state": "XX", "zip": "99001"},
    {"row": 5, "street": "700 Twin Oaks Dr", "city": "Springfield", "state": "XX", "zip": "99001"},
    {"row": 6, "street": "P.O. Box 12", "city": "Springfield", "state": "XX", "zip": "99001"},
    {"row": 7, "street": None, "city": "Springfield", "state": "XX", "zip": "99002"},
    {"row": 8, "street": "  ", "city": None, "state": None, "zip": None},
    {"row": 9, "street": "100 MAPLE AVE", "city": "springfield", "state": "xx", "zip": "99001"},
    {"row": 10, "street": "300 Elm St", "city": "Springfield", "state": "XX", "zip": "99002"},
])
STREETS = [s for s in ADDRESSES["street"] if isinstance(s, str) and s.strip()]
GEO = {"benchmark": "Public_AR_Current", "vintage": "Current_Current"}


def _geocode(client: CensusGeocoder, frame: pd.DataFrame = ADDRESSES, **kw) -> pd.DataFrame:
    return client.geocode(frame, send_addresses_to_census_geocoder=True, **{**GEO, **kw})


def _sent_streets(server: FakeGeocoder) -> list[str]:
    return [r[1] for received in server.received for r in received.rows]


def _many(n: int) -> pd.DataFrame:
    streets = list(GAZETTEER) + [f"{i} Nowhere Ln" for i in range(n)]
    return pd.DataFrame({"row": range(1, n + 1), "street": streets[:n],
                         "city": "Springfield", "state": "XX", "zip": "99001"})


# --------------------------------------------------------------------------- opt-in

@pytest.mark.parametrize("call", ["method", "function"])
def test_nothing_is_sent_without_the_opt_in(server, client, call):
    with pytest.raises(GeocoderConsentRequired) as info:
        if call == "method":
            client.geocode(ADDRESSES, **GEO)
        else:
            geocode_addresses(ADDRESSES, client=client, **GEO)
    message = str(info.value)
    assert "send_addresses_to_census_geocoder=True" in message
    assert "--send-addresses-to-census-geocoder" in message
    assert "would send 5 distinct street addresses (patient PHI) to the Census Geocoder at " \
           "127.0.0.1:" in message
    assert not any(s.lower() in message.lower() for s in STREETS)
    assert isinstance(info.value, GeocoderError) and isinstance(info.value, SdohError)
    assert server.received == []


@pytest.mark.parametrize("flag", ["yes", 1, None, "True"])
def test_the_opt_in_must_be_a_real_bool(server, client, flag):
    with pytest.raises(TypeError, match=r"send_addresses_to_census_geocoder must be True or "
                                        r"False"):
        client.geocode(ADDRESSES, send_addresses_to_census_geocoder=flag, **GEO)
    assert server.received == []


def test_explicit_false_is_refused_too(server, client):
    with pytest.raises(GeocoderConsentRequired, match=r"outside this machine"):
        client.geocode(ADDRESSES, send_addresses_to_census_geocoder=False, **GEO)
    assert server.received == []


def test_one_loud_warning_per_run_naming_count_and_host(server, caplog):
    with _client(server, batch_size=2) as client, caplog.at_level(logging.WARNING):
        _geocode(client)
    loud = [r for r in caplog.records if "PHI LEAVES THIS MACHINE" in r.getMessage()]
    assert len(loud) == 1 and loud[0].levelno == logging.WARNING
    text = loud[0].getMessage()
    host = server.base_url.split("/")[2]
    assert f"sending 5 distinct street addresses (of 9 rows) to the Census Geocoder at {host} " \
           f"in 3 batch(es)" in text
    assert "3 rows are not sent (1 PO boxes, 2 without a street)" in text
    assert len(server.received) == 3


def test_points_need_their_own_opt_in(server, client):
    points = pd.DataFrame({"row": [1], "latitude": [38.8977], "longitude": [-77.0365]})
    with pytest.raises(GeocoderConsentRequired, match=r"send_coordinates_to_census_geocoder=True"
                                                      r" \(CLI: --send-coordinates-to-census"):
        client.geographies_for_points(points, **GEO)
    assert server.received == []


# --------------------------------------------------------------------------- outcomes

def test_every_row_gets_an_outcome(client):
    out = _geocode(client)
    assert list(out.columns) == ["row", *GEOCODE_COLUMNS]
    assert out["row"].tolist() == ADDRESSES["row"].tolist()
    got = out.set_index("row")
    assert got.loc[2, ["geocode_match", "geocode_match_type", "geocode_precision"]].tolist() == \
        ["Match", "Exact", "street_address_exact"]
    assert (got.loc[2, "latitude"], got.loc[2, "longitude"]) == (38.8977, -77.0365)
    assert got.loc[2, ["geocode_county_geoid", "geocode_tract_geoid",
                       "geocode_block_group_geoid", "geocode_block_geoid"]].tolist() == \
        ["11001", "11001980000", "110019800001", "110019800001034"]
    assert got.loc[2, "geocode_matched_address"] == "100 MAPLE AVE, SPRINGFIELD, XX, 99001"
    assert got.loc[2, ["geocode_tiger_line_id", "geocode_side"]].tolist() == ["76225813", "L"]
    assert pd.isna(got.loc[2, "geocode_missing"])
    assert got.loc[3, ["geocode_match_type", "geocode_precision"]].tolist() == \
        ["Non_Exact", "street_address_nonexact"]
    assert got.loc[3, "geocode_block_group_geoid"] == "110010058022"
    expected = {4: ("No_Match", "geocode_failed"), 5: ("Tie", "geocode_failed"),
                6: (pd.NA, "po_box"), 7: (pd.NA, "zip_only"), 8: (pd.NA, "no_coordinates")}
    for row, (match, reason) in expected.items():
        assert got.loc[row, "geocode_missing"] == reason
        assert got.loc[row, "geocode_match"] is match or got.loc[row, "geocode_match"] == match
        assert np.isnan(got.loc[row, "latitude"]) and np.isnan(got.loc[row, "longitude"])
        assert got.loc[row, "geocode_precision"] == "none"
        assert pd.isna(got.loc[row, "geocode_tract_geoid"])
    # The same address in other case is sent once and answers both rows.
    assert got.loc[9, "geocode_block_geoid"] == "110019800001034"
    assert set(out["geocode_benchmark"]) == {"Public_AR_Current"}
    assert set(out["geocode_vintage"]) == {"Current_Current"}
    assert out["latitude"].dtype == "float64" and out["geocode_missing"].dtype == "string"
    assert set(out["geocode_missing"].dropna()) <= set(GEOCODE_MISSING_REASONS)


def test_po_boxes_and_rows_without_street_never_reach_the_server(server, client):
    frame = pd.DataFrame({"row": range(8), "zip": "99001", "street": [
        "PO Box 12", "P.O. Box 7", "Post Office Box 9", "POB 4", "Box 123", "12 Main St PMB 45",
        None, "300 Elm St"]})
    out = _geocode(client, frame)
    assert _sent_streets(server) == ["300 Elm St"]
    assert out["geocode_missing"].tolist() == ["po_box"] * 6 + ["zip_only", pd.NA]


def test_request_is_the_services_multipart_form_with_a_headerless_csv(server, client):
    frame = pd.DataFrame([
        {"row": "a", "street": '100 Maple Ave, Apt "2"', "city": "Spring\nfield",
         "state": "XX", "zip": 9001},
        {"row": "b", "street": "300 Elm St", "city": "Springfield", "state": "XX",
         "zip": "99002-1234"},
        {"row": "c", "street": "PO Box 1", "city": "Springfield", "state": "XX", "zip": None},
        {"row": "d", "street": "400 Pine Rd", "city": None, "state": None, "zip": 99003.0},
    ])
    _geocode(client, frame)
    [received] = server.received
    assert received.path == "/geocoder/geographies/addressbatch"
    assert received.fields == {"benchmark": "Public_AR_Current", "vintage": "Current_Current"}
    assert list(received.files) == ["addressFile"]
    _, text = received.files["addressFile"]
    assert text.endswith("\n") and not text.lower().startswith("id,") and '"' not in text
    # Unique IDs are positions (1-based) of the first row holding each address, never row ids.
    assert received.rows == [
        ["1", "100 Maple Ave Apt 2", "Spring field", "XX", "09001"],
        ["2", "300 Elm St", "Springfield", "XX", "99002"],
        ["4", "400 Pine Rd", "", "", "99003"],
    ]


def test_locations_endpoint_when_no_vintage(server, client):
    out = _geocode(client, vintage=None)
    [received] = server.received
    assert received.path == "/geocoder/locations/addressbatch"
    assert received.fields == {"benchmark": "Public_AR_Current"}
    got = out.set_index("row")
    assert got.loc[2, "latitude"] == 38.8977 and got.loc[2, "geocode_precision"] == \
        "street_address_exact"
    assert out["geocode_tract_geoid"].isna().all() and out["geocode_vintage"].isna().all()


def test_acs_vintage_answers_leave_the_block_empty(client):
    got = _geocode(client, vintage="ACS2024_Current").set_index("row")
    assert got.loc[2, "geocode_tract_geoid"] == "11001980000"
    assert pd.isna(got.loc[2, "geocode_block_group_geoid"])
    assert pd.isna(got.loc[2, "geocode_block_geoid"])


def test_latin1_answer_is_decoded(tmp_path):
    fake = FakeGeocoder(encoding="latin-1")
    try:
        key = "500 CAÑON RD"
        GAZETTEER[key] = ("Exact", "500 CAÑON RD, ESPAÑOLA, XX, 99004", -106.08, 35.99, "1", "L",
                          "35", "039", "940500", "1001")
        frame = pd.DataFrame({"row": [1], "street": ["500 Cañon Rd"], "zip": ["99004"]})
        with _client(fake) as client:
            out = _geocode(client, frame)
        assert out.loc[0, "geocode_matched_address"] == "500 CAÑON RD, ESPAÑOLA, XX, 99004"
    finally:
        GAZETTEER.pop(key, None)
        fake.stop()


# --------------------------------------------------------------------------- batching

def test_default_batch_size_is_the_services_limit():
    assert MAX_BATCH_SIZE == 10_000
    assert CensusGeocoder().batch_size == 10_000


@pytest.mark.parametrize("size", [0, 10_001, 2.5, True])
def test_batch_size_is_bounded(size):
    with pytest.raises(ValueError, match=r"batch_size must be an int from 1 to 10000"):
        CensusGeocoder(batch_size=size)


def test_batches_are_split_and_joined_back(server):
    frame = _many(8)
    with _client(server, batch_size=3) as client:
        split = _geocode(client, frame)
    assert [len(r.rows) for r in server.received] == [3, 3, 2]
    ids = [row[0] for r in server.received for row in r.rows]
    assert ids == [str(i) for i in range(1, 9)]
    server.received.clear()
    with _client(server) as client:
        whole = _geocode(client, frame)
    assert len(server.received) == 1
    pd.testing.assert_frame_equal(split, whole)
    assert split["geocode_match"].tolist() == ["Match"] * 4 + ["No_Match"] * 4


def test_concurrent_batches_give_the_same_answer(server):
    frame = _many(12)
    with _client(server, batch_size=2) as client:
        alone = _geocode(client, frame)
    server.latency = 0.05
    server.received.clear()
    with _client(server, batch_size=2, max_workers=3) as client:
        together = _geocode(client, frame)
        assert 1 <= len(client._workers.sessions) <= 3
    assert len(server.received) == 6
    pd.testing.assert_frame_equal(alone, together)


def test_a_progress_bar_counts_addresses(server, capsys):
    with _client(server, batch_size=3, progress=True) as client:
        _geocode(client, _many(7))
    err = capsys.readouterr().err
    assert "Census Geocoder" in err and "/7 " in err and "address/s" in err
    assert not any(s in err for s in STREETS)


# --------------------------------------------------------------------------- failures

@pytest.mark.parametrize(("status", "times"), [(500, 1), (502, 2), (503, 3), (429, 1)])
def test_transient_statuses_are_retried(server, client, status, times):
    server.inject(status, times=times)
    out = _geocode(client)
    assert len(server.received) == times + 1
    assert out.set_index("row").loc[2, "geocode_match"] == "Match"


def test_retry_after_is_honoured_but_capped(server, monkeypatch):
    server.inject(429, headers={"Retry-After": "30"})
    pauses = []
    with _client(server, backoff=0.0, max_delay=0.3) as client:
        pause = client._retry.pause
        monkeypatch.setattr(client._retry, "pause",
                            lambda delay: (pauses.append(delay), pause(delay)))
        _geocode(client)
    assert pauses == [0.3]  # Retry-After: 30 capped at max_delay, shared by every worker
    assert len(server.received) == 2


def test_a_timeout_is_retried(server):
    server.inject(None, delay=1.0)
    with _client(server, timeout=0.2) as client:
        out = _geocode(client)
    assert len(server.received) == 2 and out["geocode_match"].notna().sum() == 6


def test_timeouts_exhausting_retries_say_so(server):
    server.inject(None, delay=0.6, times=2)
    with _client(server, timeout=0.15, max_retries=1) as client, \
            pytest.raises(GeocoderError, match=r"^A request to the Census Geocoder failed after 2 "
                                               r"attempts: timed out after 0\.15 s \(ReadTimeout\) "
                                               r"\(POST http://127\.0\.0\.1:\d+/geocoder/"
                                               r"geographies/addressbatch, batch 1 of 1 .*\)\. The "
                                               r"Census Geocoder is failing, slow or rate-limiting: "
                                               r"try again later with smaller batches"):
        _geocode(client)


def test_an_html_error_page_is_retried_and_reported_by_its_title(server, client):
    page = "<html><head><title>502 Bad Gateway</title></head><body>proxy</body></html>"
    server.inject(502, body=page)
    assert len(_geocode(client)) == 9
    server.received.clear()
    server.inject(502, body=page, times=10)
    with pytest.raises(GeocoderError, match=r"failed after 4 attempts: HTTP 502: 502 Bad "
                                            r"Gateway \(POST .*\)\. The Census Geocoder is "
                                            r"failing, slow or rate-limiting: try again later"):
        _geocode(client)


def test_an_html_page_with_200_is_an_error_without_retry(server, client):
    server.inject(200, body="<!DOCTYPE html><html><head><title>Census Geocoder - Batch Address"
                            "</title></head><body>form</body></html>")
    with pytest.raises(GeocoderError, match=r"Geocoder failed: HTTP 200 with an HTML page "
                                            r"instead of a CSV answer: Census Geocoder - Batch "
                                            r"Address \(POST .*\)\. Check the benchmark and "
                                            r"vintage .* and that --geocoder-url \(base_url=\) "
                                            r"points at a Census Geocoder\.$"):
        _geocode(client)
    assert len(server.received) == 1


def test_a_truncated_body_is_retried(server, client):
    server.inject(None, truncate=True)
    out = _geocode(client)
    assert len(server.received) == 2 and out["geocode_match"].notna().sum() == 6


def test_a_missing_answer_row_is_retried(server, client):
    server.inject(None, drop=1)
    out = _geocode(client)
    assert len(server.received) == 2 and out["geocode_match"].notna().sum() == 6


def test_persistently_incomplete_answers_are_a_clear_error(server, client):
    server.inject(None, drop=2, times=10)
    with pytest.raises(GeocoderError, match=r"failed after 3 attempts: HTTP 200 but an "
                                            r"incomplete answer \(\d+ bytes\): 2 of the 5 rows "
                                            r"sent are not answered \(POST .*\)\. Nothing was "
                                            r"cached: run again to fetch afresh"):
        _geocode(client)
    assert len(server.received) == 3  # the first try and two retries of a bad body


def test_a_one_line_message_with_200_is_shown(server, client):
    server.inject(200, body="error: the batch file holds no records", times=10)
    with pytest.raises(GeocoderError, match=r"after 3 attempts: .*incomplete answer \(\d+ "
                                            r"bytes\): the body reads 'error: the batch file "
                                            r"holds no records'"):
        _geocode(client)


def test_a_client_error_is_not_retried(server, client):
    server.inject(400, body="error: benchmark 'Public_AR_Nope' is not valid")
    with pytest.raises(GeocoderError, match=r"^A request to the Census Geocoder failed: HTTP "
                                            r"400: error: benchmark 'Public_AR_Nope' is not "
                                            r"valid \(POST http://.*\)\. Check the benchmark "
                                            r"and vintage \(--geocoder-benchmark, "
                                            r"--geocoder-vintage\)"):
        _geocode(client)
    assert len(server.received) == 1


def test_connection_refused_is_retried_then_reported(server):
    base_url = server.base_url
    server.stop()
    with CensusGeocoder(base_url=base_url, timeout=0.5, backoff=0.01, max_retries=1,
                        progress=False) as client, \
            pytest.raises(GeocoderError, match=r"after 2 attempts: ConnectionError: .*\. Check "
                                               r"the network connection \(and any proxy "
                                               r"settings\), then run again; without a network, "
                                               r"point --geocoder-url") as info:
        _geocode(client)
    assert info.value.__cause__ is None


def test_errors_and_logs_name_batch_and_row_ids_never_addresses(server, caplog):
    echo = "error: cannot read record 1: 100 Maple Ave, Springfield, XX, 99001"
    server.inject(503, body=echo, times=10)
    with _client(server, batch_size=2) as client, caplog.at_level(logging.DEBUG), \
            pytest.raises(GeocoderError) as info:
        _geocode(client)
    message = str(info.value)
    assert "batch 1 of 3 (2 rows; row ids 2, 9, 3)" in message
    assert "cannot read record 1: [address]" in message and "Springfield" not in message
    for text in (message, repr(info.value), caplog.text):
        assert not any(s.lower() in text.lower() for s in STREETS)
    assert "retrying POST" in caplog.text


def test_a_failed_batch_can_be_marked_instead(server, caplog):
    server.inject(503, times=4)  # batch 1 fails every attempt; batch 2 is answered
    with _client(server, batch_size=2) as client, caplog.at_level(logging.ERROR):
        out = _geocode(client, on_batch_error="mark")
    got = out.set_index("row")
    assert got.loc[[2, 9, 3], "geocode_missing"].tolist() == ["geocoder_unavailable"] * 3
    assert got.loc[[2, 9, 3], "geocode_match"].isna().all()
    assert got.loc[4, "geocode_missing"] == "geocode_failed"
    assert got.loc[6, "geocode_missing"] == "po_box"
    assert "marked geocoder_unavailable" in caplog.text
    assert not any(s.lower() in caplog.text.lower() for s in STREETS)


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize(("frame", "kw", "error", "match"), [
    (ADDRESSES.drop(columns="row"), {}, ValueError, r"addresses has no id column 'row'"),
    (ADDRESSES.assign(row=1), {}, ValueError, r"repeats id 1; ids must be unique"),
    (ADDRESSES.assign(row=[1, None, 3, 4, 5, 6, 7, 8, 9]), {}, ValueError,
     r"is empty at row position 1"),
    (ADDRESSES.drop(columns="street"), {}, ValueError, r"has no 'street' column"),
    (ADDRESSES, {"benchmark": "Public AR"}, ValueError, r"benchmark must be a Census Geocoder"),
    (ADDRESSES, {"benchmark": None}, ValueError, r"benchmark must be"),
    (ADDRESSES, {"vintage": "../x"}, ValueError, r"vintage must be .* \(or None for "),
    (ADDRESSES, {"on_batch_error": "skip"}, ValueError, r"on_batch_error must be one of"),
    (ADDRESSES.to_dict("records"), {}, TypeError, r"must be a pandas DataFrame"),
])
def test_bad_arguments_fail_before_any_request(server, client, frame, kw, error, match):
    with pytest.raises(error, match=match):
        _geocode(client, frame, **kw)
    assert server.received == []


@pytest.mark.parametrize(("kw", "match"), [
    ({"base_url": "ftp://x"}, r"base_url must be an http"),
    ({"base_url": "http://geocoding.geo.census.gov/geocoder"}, r"is plain http to a host that is "
                                                               r"not loopback.*unencrypted"),
    ({"base_url": "http://10.0.0.5/geocoder"}, r"plain http to a host that is not loopback"),
    ({"timeout": 0}, r"timeout must be > 0"),
    ({"max_retries": -1}, r"max_retries must be an int"),
    ({"max_workers": 0}, r"max_workers must be an int >= 1"),
])
def test_bad_client_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        CensusGeocoder(**kw)


def test_an_empty_frame_sends_nothing(server, client):
    out = _geocode(client, ADDRESSES.iloc[:0])
    assert list(out.columns) == ["row", *GEOCODE_COLUMNS] and len(out) == 0
    assert server.received == []


# --------------------------------------------------------------------------- PO boxes

PO_BOXES = ["PO Box 12", "P.O. Box 7", "p.o. box", "P O Box 3", "POBox 44", "PO BX 5",
            "Post Office Box 9", "post office box 1", "POB 4", "pob #4", "12 Main St, PO Box 5",
            "P.O.B. 17", "Box 123", "box #12", "BOX NO. 5", "  Box 9", "12 Main St PMB 456",
            "PMB 3", "Private Mailbox 9", "General Delivery"]
NOT_PO_BOXES = ["Box Elder Rd", "12 Boxwood Ln", "Pobst Rd", "1 Hippo Box Ln", "Post Office Rd",
                "100 Shipbox Ave", "4 Boxer Ct", "RR 2 Box 15", "HC 65 Box 12", "12 Po Bend Rd",
                "Box Canyon Rd", "55 Apo Blvd", "1 Shipment Way"]


@pytest.mark.parametrize("street", PO_BOXES)
def test_po_boxes_are_detected(street):
    assert is_po_box(street) and PO_BOX_PATTERN.search(street)


@pytest.mark.parametrize("street", NOT_PO_BOXES)
def test_streets_named_box_are_not_po_boxes(street):
    assert not is_po_box(street)


def test_linking_uses_this_one_po_box_definition():
    assert linking.PO_BOX_PATTERN is PO_BOX_PATTERN


def test_is_po_box_takes_none_and_refuses_other_types():
    assert is_po_box(None) is False and is_po_box(float("nan")) is False
    assert is_po_box(pd.NA) is False
    with pytest.raises(TypeError, match=r"street must be a str or None, got int"):
        is_po_box(12)


# --------------------------------------------------------------------------- parsing

ANSWER = (
    '"3","3 Quarry Ln, Springfield, XX, 99001","Match","Non_Exact",'
    '"3 QUARRY LN, SPRINGFIELD, XX, 99001","-77.03,38.9","76225900","R","11","001","005802",'
    '"2001"\r\n'
    '"2","79 Wistful Vista, Wistful Vista, XX, ","No_Match"\r\n'
    '\r\n'
    '"1","7 Twin Oaks Dr, Springfield, XX, 99001","Tie"\r\n'
)


def test_parse_address_batch_reads_quoted_commas_ties_and_no_matches():
    table = parse_address_batch(ANSWER)
    assert table["id"].tolist() == ["3", "2", "1"]
    assert table["match"].tolist() == ["Match", "No_Match", "Tie"]
    first = table.iloc[0]
    assert first["matched_address"] == "3 QUARRY LN, SPRINGFIELD, XX, 99001"
    assert (first["longitude"], first["latitude"]) == (-77.03, 38.9)
    assert first["block_group_geoid"] == "110010058022"
    assert first["block_geoid"] == "110010058022001"
    assert table.iloc[1:][["latitude", "longitude"]].isna().all().all()
    assert "input_address" not in table.columns and ADDRESS_BATCH_COLUMNS[1] == "input_address"


def test_parse_address_batch_locations_and_a_header_row():
    body = ('"id","address","match"\n'
            '"1","1 A St, T, XX, 99001","Match","Exact","1 A ST, T, XX, 99001","-75.1,39.9",'
            '"9","L"\n')
    table = parse_address_batch(body.encode("utf-8"), geographies=False)
    assert table["id"].tolist() == ["1"] and table.loc[0, "tract_geoid"] is pd.NA
    assert table.loc[0, "latitude"] == 39.9


def test_parse_address_batch_shows_only_numeric_ids():
    with pytest.raises(GeocoderError, match=r"line 1 \(id not a number\)") as info:
        parse_address_batch('"100 Maple Ave","Springfield","XX","99001"\n')
    assert "Maple" not in str(info.value)


@pytest.mark.parametrize(("body", "match"), [
    ('"1","x","Maybe"\n', r"line 1 \(id '1'\): its match indicator is not Match"),
    ('"1","x","Match","Exact","y","-77.0","9","L","11","001","000100","1"\n',
     r"the coordinates are not one 'lon,lat' pair"),
    ('"1","x","Match","Exact","y","-277.0,38","9","L","11","001","000100","1"\n',
     r"out of range"),
    ('"1","x","Match","Exact","y","-77.0,38","9","L"\n', r"a Match row has 8 fields, expected 12"),
    ('"1","x","Match","Fuzzy","y","-77.0,38","9","L","11","001","000100","1"\n',
     r"its match type is not Exact or Non_Exact"),
    ('"1","x","Match","Exact","y","-77.0,38","9","L","11","0A1","000100","1"\n',
     r"county is not a code of at most 3 digits"),
    ('"1","x","No_Match"\n"1","x","No_Match"\n', r"line 2: id '1' is repeated"),
    ('"1","x","No_Match"\n"2","1 Main St, Spr', r"the CSV breaks off at line 2 \(an unclosed "
                                                r"quote"),
])
def test_parse_address_batch_rejects_malformed_rows_without_showing_values(body, match):
    with pytest.raises(GeocoderError, match=match) as info:
        parse_address_batch(body)
    assert "Main St" not in str(info.value)


# --------------------------------------------------------------------------- points

def test_geographies_for_points(server, client):
    server.coordinates_body = b'"3","-77.04","38.91","No_Match"\n' \
                              b'"1","-77.03","38.9","Match","11","001","005802","2001"\n'
    points = pd.DataFrame({"row": [10, 11, 12, 13], "latitude": [38.9, 38.9, 38.91, None],
                           "longitude": [-77.03, -77.03, -77.04, None]})
    out = client.geographies_for_points(points, send_coordinates_to_census_geocoder=True, **GEO)
    [received] = server.received
    assert received.path == "/geocoder/geographies/coordinatesbatch"
    assert received.fields == GEO and list(received.files) == ["coordinatesFile"]
    assert received.rows == [["1", "-77.03", "38.9"], ["3", "-77.04", "38.91"]]
    assert list(out.columns) == ["row", *POINT_COLUMNS]
    assert out["geocode_block_group_geoid"].tolist()[:2] == ["110010058022"] * 2
    assert out["geocode_missing"].tolist() == [pd.NA, pd.NA, "outside_boundaries",
                                               "no_coordinates"]


def test_points_answer_for_other_points_is_retried_then_an_error(server, client):
    server.coordinates_body = b'"1","-70.0","40.0","Match","11","001","005802","2001"\n'
    points = pd.DataFrame({"row": [1], "latitude": [38.9], "longitude": [-77.03]})
    with pytest.raises(GeocoderError, match=r"1 row\(s\) echo other coordinates than those sent"):
        client.geographies_for_points(points, send_coordinates_to_census_geocoder=True, **GEO)
    assert len(server.received) == 3


# --------------------------------------------------------------------------- linking

def test_geocodes_feed_the_local_point_in_polygon_link(client):
    history = pd.DataFrame({
        "patient_id": ["p1", "p2", "p3"], "valid_from": ["2020-01-01"] * 3,
        "street": ["100 Maple Ave", "PO Box 12", "999 Nowhere Ln"], "zip": ["99001"] * 3,
        "latitude": [np.nan] * 3, "longitude": [np.nan] * 3, "row": [2, 3, 4]})
    geocoded = geocode_addresses(history, send_addresses_to_census_geocoder=True, client=client,
                                 **GEO)
    filled = apply_geocodes(history, geocoded)
    assert list(filled.index) == [0, 1, 2]
    assert filled.loc[0, ["latitude", "longitude"]].tolist() == [38.8977, -77.0365]
    squares = gpd.GeoDataFrame({"geoid": ["110019800001"]},
                               geometry=[shapely.box(-78, 38, -76, 39)], crs=4269)
    timeline = linking.link_addresses(filled, {2020: squares}).set_index("patient_id")
    assert timeline.loc["p1", "block_group_geoid_2020"] == \
        filled.loc[0, "geocode_block_group_geoid"]
    assert timeline.loc["p2", "link_missing"] == "po_box"
    assert timeline.loc["p3", "link_missing"] == "geocode_failed"


def test_apply_geocodes_keeps_given_coordinates():
    history = pd.DataFrame({"row": [1, 2], "latitude": [39.9, None], "longitude": [-75.1, None]},
                           index=[10, 20])
    geocoded = pd.DataFrame({"row": [1, 2], "latitude": [38.0, 38.5],
                             "longitude": [-77.0, -77.5], "geocode_match": ["Match", "Match"]})
    filled = apply_geocodes(history, geocoded)
    assert list(filled.index) == [10, 20]
    assert filled["latitude"].tolist() == [39.9, 38.5]
    with pytest.raises(ValueError, match=r"repeats ids"):
        apply_geocodes(history, pd.concat([geocoded, geocoded]))
    with pytest.raises(ValueError, match=r"history already has \['geocode_match'\]"):
        apply_geocodes(filled, geocoded)


# --------------------------------------------------------------------------- catalog

@pytest.mark.parametrize("reason", sorted(GEOCODE_MISSING_REASONS))
def test_missing_reasons_are_in_the_catalog(reason):
    assert reason in load_catalog().missing_reasons


# --------------------------------------------------------------------------- real answers

CONFORMANCE = {
    "coordinatesbatch_current_current.csv": [("1", "11001980000", "110019800001",
                                              "110019800001034")],
    "coordinatesbatch_acs2024_current.csv": [("1", "11001980000", None, None)],
    "coordinatesbatch_dedupe.csv": [("1", "11001005802", None, None),
                                    ("3", "11001005303", None, None)],
}


def _real(real_data: Path, name: str) -> bytes:
    path = real_data / "census_geocoder" / name
    if not path.is_file():
        pytest.skip(f"real Census Geocoder answer not found at {path}")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_real_coordinates_batch_answers_parse(real_data, name):
    table = parse_coordinates_batch(_real(real_data, name))
    got = [(r.id, r.tract_geoid, None if r.block_group_geoid is pd.NA else r.block_group_geoid,
            None if r.block_geoid is pd.NA else r.block_geoid) for r in table.itertuples()]
    assert got == CONFORMANCE[name]
    assert set(table["match"]) == {"Match"} and set(table["state"]) == {"11"}
    assert table["county"].str.len().eq(3).all() and table["tract"].str.len().eq(6).all()


@pytest.mark.parametrize(("name", "vintage"), [
    ("coordinatesbatch_current_current.csv", "Current_Current"),
    ("coordinatesbatch_acs2024_current.csv", "ACS2024_Current"),
])
def test_real_answer_served_to_the_client(real_data, name, vintage):
    fake = FakeGeocoder(coordinates_body=_real(real_data, name))
    try:
        points = pd.DataFrame({"row": ["white-house"], "latitude": [38.8977],
                               "longitude": [-77.0365]})
        with _client(fake) as client:
            out = client.geographies_for_points(points, send_coordinates_to_census_geocoder=True,
                                                benchmark="Public_AR_Current", vintage=vintage)
        assert fake.received[0].rows == [["1", "-77.0365", "38.8977"]]
        assert out.loc[0, "geocode_tract_geoid"] == "11001980000"
        assert pd.isna(out.loc[0, "geocode_missing"])
        expected = CONFORMANCE[name][0][2]
        assert (out.loc[0, "geocode_block_group_geoid"] if expected else None) == expected
    finally:
        fake.stop()


def test_real_deduplicated_answer_joins_back_to_every_row(real_data):
    """The real dedupe answer holds ids 1 and 3: the second point repeated the first."""
    fake = FakeGeocoder(coordinates_body=_real(real_data, "coordinatesbatch_dedupe.csv"))
    try:
        points = pd.DataFrame({"row": ["a", "b", "c"], "latitude": [38.9, 38.9, 38.91],
                               "longitude": [-77.03, -77.03, -77.04]})
        with _client(fake) as client:
            out = client.geographies_for_points(points, send_coordinates_to_census_geocoder=True,
                                                benchmark="Public_AR_Current",
                                                vintage="ACS2024_Current")
        assert [r[0] for r in fake.received[0].rows] == ["1", "3"]
        assert out["geocode_tract_geoid"].tolist() == ["11001005802", "11001005802",
                                                       "11001005303"]
    finally:
        fake.stop()


def test_cli_refuses_a_plain_http_geocoder_url_without_a_traceback(tmp_path):
    history, boundaries = tmp_path / "history.csv", tmp_path / "bg.zip"
    history.write_text("patient_id,street\n")
    boundaries.write_bytes(b"")
    result = CliRunner().invoke(sdoh, [
        "link", str(history), "--boundaries", "2020", str(boundaries),
        "--send-addresses-to-census-geocoder", "--geocoder-url", "http://10.1.2.3/geocoder",
        "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1 and result.exception is not None
    assert "Traceback" not in result.output
    assert "error: base_url 'http://10.1.2.3/geocoder' is plain http to a host that is not " \
           "loopback" in result.output
    assert not (tmp_path / "ws").exists()
