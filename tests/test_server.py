"""The HTTP feature server (feature_repo.serving.server) on a real uvicorn, loopback, embedded profile."""

import datetime as dt
import json
import urllib.error
import urllib.request

import pandas as pd
import pytest

from feature_repo import apply_definitions, feature_store
from feature_repo.serving.server import MAX_IDS, create_app, running


def call(url: str, path: str, body=None, *, raw: bytes | None = None, token: str | None = None,
         method: str | None = None) -> tuple[int, dict]:
    """POST ``body`` as JSON (or ``raw`` bytes), or GET without either; (status, JSON reply).

    ``token`` is sent as ``Authorization: Bearer <token>``.
    """
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(hand_built_store):
    """A server of the session's read-only hand-built store (the root conftest's)."""
    store, ws, _ = hand_built_store
    with running(create_app(store, ws)) as url:
        yield url


NOW = "2022-07-01T00:00:00Z"


def check_patients(url: str) -> None:
    """What the patient endpoint must answer on the hand-built region, whatever the profile."""
    status, reply = call(url, "/patients/features", {"patient_ids": ["A", "B", "C", "D"], "at": NOW})
    assert status == 200, reply
    a, b, c, d = reply["results"]
    assert (a["patient_id"], a["acs_tract__geoid"], a["acs_tract__vintage"]) == ("A", "99001000100", 2020)
    assert a["acs_tract__pct_below_poverty"] == 6.0 and a["acs_state__pct_below_poverty"] == 2.0
    assert (b["acs_tract__pct_below_poverty"], b["acs_tract__pct_below_poverty_missing"]) == (None, "po_box")
    assert c["acs_tract__pct_below_poverty_missing"] == "no_address_at_event"  # period ended
    assert d["acs_tract__pct_below_poverty_missing"] == "unknown_patient"  # never in the timeline


def test_patients(server):
    check_patients(server)


def test_locations(server):
    body = {"locations": ["99001000100", "99001"], "at": NOW, "feature_service": "equity_audit_v1"}
    status, reply = call(server, "/locations/features", body)
    assert status == 200, reply
    tract, county = reply["results"]
    assert tract["acs_tract__pct_below_poverty"] == 6.0
    assert county["acs_tract__pct_below_poverty_missing"] == "location_coarser_than_level"
    assert "acs_tract__pct_below_poverty_moe" in tract  # the audit service adds MOEs


def test_health_reaches_the_online_store(server):
    assert call(server, "/health") == (200, {"status": "ok", "registry": "ok", "online_store": "ok"})


def test_feasts_own_endpoint_serves_the_feature_services(server):
    status, reply = call(server, "/get-online-features", {
        "feature_service": "model_inputs_v1", "full_feature_names": True,
        "entities": {"tract_geoid": ["99001000100"], "vintage": [2020], "state_geoid": ["99"]}})
    assert status == 200, reply
    names = reply["metadata"]["feature_names"]
    assert reply["results"][names.index("acs_tract__pct_below_poverty")]["values"] == [6.0]
    assert reply["results"][names.index("acs_state__pct_below_poverty")]["values"] == [2.0]


@pytest.mark.parametrize(("path", "body", "raw", "status", "message"), [
    ("/patients/features", {"patient_ids": ["A"], "feature_service": "nope_v1"}, None, 404,
     "unknown feature service 'nope_v1'; choose one of"),
    ("/patients/features", {"patient_ids": []}, None, 422, "at least 1 and at most 1000"),
    ("/patients/features", {"patient_ids": ["A"] * (MAX_IDS + 1)}, None, 422, "at most 1000"),
    ("/patients/features", {"ids": ["A"]}, None, 422, "invalid request"),
    ("/patients/features", None, b'{"patient_ids": ["A"', 400, "not valid JSON"),
    ("/locations/features", {"locations": ["123"]}, None, 422, "is not a GEOID"),
    ("/locations/features", {"locations": [[39.5, -75.5]]}, None, 422, "need block-group boundaries"),
])
def test_bad_requests_get_a_clear_4xx(server, path, body, raw, status, message):
    got, reply = call(server, path, body, raw=raw)
    assert got == status, reply
    assert message in reply["error"]


def test_a_batch_of_a_thousand_ids_is_served(server):
    status, reply = call(server, "/patients/features", {"patient_ids": ["A", "C"] * (MAX_IDS // 2)})
    assert status == 200 and len(reply["results"]) == MAX_IDS


def test_health_is_503_when_the_online_store_is_gone(hand_built_copy, tmp_path):
    ws = hand_built_copy(tmp_path)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    store.config.online_store.path = str(tmp_path / "missing" / "online.db")
    with running(create_app(store, ws)) as url:
        status, reply = call(url, "/health")
    assert status == 503 and reply["online_store"].startswith("error")


def test_at_in_the_past_is_honoured(server):
    status, reply = call(server, "/patients/features",
                         {"patient_ids": ["C"], "at": dt.datetime(2020, 12, 15, tzinfo=dt.UTC).isoformat()})
    assert status == 200 and reply["results"][0]["acs_tract__pct_below_poverty"] == 10.0
    assert pd.Timestamp(NOW) > pd.Timestamp("2020-12-15", tz="UTC")
