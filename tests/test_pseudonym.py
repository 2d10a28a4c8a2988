"""Pseudonymized patient keys: keyed hashes in the published timeline, lookups by raw id."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pytest
from hand_built import POVERTY, STATE_POVERTY, TIMELINE, acs_frame

from feature_repo import apply_definitions, feature_store, materialize, online_features, training_frame
from ingestion.core.datasets import acs_spec, geography_timeline_spec
from ingestion.core.errors import LinkageError
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish
from ingestion.geo.pseudonym import (
    PATIENT_KEY_ENV,
    key_fingerprint,
    lookup_keys,
    patient_key_secret,
    pseudonymize_ids,
    pseudonymize_timeline,
    scheme_of,
)

SECRET = "s3cret-" + "0123456789abcdef" * 2
OTHER = "other-" + "fedcba9876543210" * 2


def test_same_id_and_key_give_the_same_key_and_it_is_hmac_sha256():
    ids = pd.Series(["P000001", "P000002", "P000001", None], index=[5, 6, 7, 8])
    keys = pseudonymize_ids(ids, secret=SECRET.encode())
    assert list(keys.index) == [5, 6, 7, 8]
    assert keys[5] == keys[7] != keys[6]
    assert pd.isna(keys[8])
    assert keys[5] == hmac.new(SECRET.encode(), b"P000001", hashlib.sha256).hexdigest()


def test_a_different_key_gives_different_keys():
    ids = pd.Series(["P000001"])
    assert pseudonymize_ids(ids, secret=SECRET.encode())[0] != \
        pseudonymize_ids(ids, secret=OTHER.encode())[0]
    assert key_fingerprint(SECRET.encode()) != key_fingerprint(OTHER.encode())


def test_numbers_are_hashed_as_their_text():
    assert pseudonymize_ids(pd.Series([7]), secret=b"k" * 32)[0] == \
        pseudonymize_ids(pd.Series(["7"]), secret=b"k" * 32)[0]


@pytest.mark.parametrize(("value", "match"), [
    (None, rf"set the environment variable {PATIENT_KEY_ENV} to at least 32 random characters"),
    ("", rf"set the environment variable {PATIENT_KEY_ENV}"),
    ("short-secret", rf"{PATIENT_KEY_ENV} is set but has 12 characters"),
])
def test_the_secret_comes_from_the_environment_and_is_never_shown(monkeypatch, value, match):
    if value is None:
        monkeypatch.delenv(PATIENT_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(PATIENT_KEY_ENV, value)
    with pytest.raises(LinkageError, match=match) as error:
        patient_key_secret()
    assert value is None or value == "" or value not in str(error.value)


def test_a_timeline_is_not_pseudonymized_twice():
    once = pseudonymize_timeline(TIMELINE, secret=SECRET.encode())
    assert once["patient_id_scheme"].unique().tolist() == [
        f"hmac_sha256:{key_fingerprint(SECRET.encode())}"]
    assert not set(once["patient_id"]) & set(TIMELINE["patient_id"])
    with pytest.raises(LinkageError, match="pseudonymized already"):
        pseudonymize_timeline(once, secret=SECRET.encode())


# -- served through Feast ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The hand-built region with its timeline published under pseudonymized keys."""
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    publish(acs_frame("tract", POVERTY), acs_spec("tract"), ws)
    publish(acs_frame("state", STATE_POVERTY), acs_spec("state"), ws)
    publish(pseudonymize_timeline(TIMELINE, secret=SECRET.encode()), geography_timeline_spec(), ws)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    return store, ws


def test_the_published_timeline_holds_no_raw_id(served):
    _, ws = served
    published = pd.read_parquet(ws.published_dir("patient_geography"))
    assert not set(published["patient_id"]) & {"A", "B", "C"}
    assert published["patient_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert scheme_of(ws) == f"hmac_sha256:{key_fingerprint(SECRET.encode())}"


def test_lookups_by_raw_id_hash_with_the_same_secret(served, monkeypatch):
    store, ws = served
    monkeypatch.setenv(PATIENT_KEY_ENV, SECRET)
    events = pd.DataFrame({"patient_id": ["A", "A", "B"],
                           "event_timestamp": ["2022-05-31T23:00:00Z", "2022-06-01T09:00:00Z",
                                               "2022-06-01T00:00:00Z"]})
    frame = training_frame(events, store=store, workspace=ws)
    assert frame["patient_id"].tolist() == ["A", "A", "B"]  # the caller's ids come back
    assert frame["acs_tract__pct_below_poverty"].tolist()[:2] == [20.0, 6.0]
    assert frame.loc[2, "acs_tract__pct_below_poverty_missing"] == "po_box"
    at = pd.Timestamp("2022-07-01", tz="UTC").to_pydatetime()
    row = online_features(["A"], store=store, workspace=ws, at=at).iloc[0]
    assert (row["patient_id"], row["acs_tract__pct_below_poverty"]) == ("A", 6.0)


def test_lookups_with_another_or_no_secret_fail_loudly(served, monkeypatch):
    store, ws = served
    events = pd.DataFrame({"patient_id": ["A"], "event_timestamp": ["2022-07-01T00:00:00Z"]})
    monkeypatch.setenv(PATIENT_KEY_ENV, OTHER)
    with pytest.raises(LinkageError, match=rf"{PATIENT_KEY_ENV} is not the secret .* published "
                                           rf"{key_fingerprint(SECRET.encode())}"):
        training_frame(events, store=store, workspace=ws)
    monkeypatch.delenv(PATIENT_KEY_ENV)
    with pytest.raises(LinkageError, match=PATIENT_KEY_ENV):
        online_features(["A"], store=store, workspace=ws)


def test_raw_timelines_are_looked_up_by_raw_id(tmp_path, monkeypatch):
    monkeypatch.delenv(PATIENT_KEY_ENV, raising=False)
    ws = Workspace(tmp_path)
    ids = pd.Series(["A", "B"])
    assert lookup_keys(ids, ws).tolist() == ["A", "B"]  # nothing published yet
    publish(TIMELINE, geography_timeline_spec(), ws)
    assert scheme_of(ws) == "raw"
    assert lookup_keys(ids, ws).tolist() == ["A", "B"]
