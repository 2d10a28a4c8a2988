"""The demo pipeline end to end, checked against an independent pandas reference."""

import json
import stat

import numpy as np
import pandas as pd
import pytest

from feature_repo import feature_store, training_frame
from ingestion.core.datasets import adi_spec, screened_needs_spec
from ingestion.core.errors import InputError, ValidationFailed
from ingestion.demo.fhir_export import encounter_id
from ingestion.gate.publish import publish, read_published
from ingestion.geo.linking import read_address_history
from ingestion.jobs.pipeline import labelled_events

pytestmark = pytest.mark.slow


def manifest(workspace):
    return json.loads((workspace.raw / "demo_region" / "manifest.json").read_text())


def region_csv(workspace, name: str) -> pd.DataFrame:
    return pd.read_csv(workspace.raw / "demo_region" / "patients" / f"{name}.csv",
                       dtype={"patient_id": str})


def reference_frame(workspace, events: pd.DataFrame, view: str, level: str, feature: str) -> pd.Series:
    """The expected value per event, computed without Feast: address then vintage then lookup."""
    timeline = pd.read_parquet(workspace.published_dir("patient_geography"))
    data = pd.read_parquet(workspace.published_dir(view))
    calendar = data[["vintage", "release_ts", "boundary_year"]].drop_duplicates().sort_values("release_ts")
    values = data.set_index([f"{level}_geoid", "vintage"])[feature]
    out = []
    for patient, at in zip(events["patient_id"], pd.to_datetime(events["event_timestamp"], utc=True),
                           strict=True):
        periods = timeline[(timeline.patient_id == patient) & (timeline.valid_from <= at)
                           & (timeline.valid_to.isna() | (timeline.valid_to > at))]
        released = calendar[calendar.release_ts <= at]
        if periods.empty or released.empty:
            out.append(np.nan)
            continue
        vintage, boundary = released.iloc[-1][["vintage", "boundary_year"]]
        geoid = periods.iloc[-1][f"{level}_geoid_{int(boundary)}"]
        out.append(values.get((geoid, int(vintage)), np.nan) if geoid is not None else np.nan)
    return pd.Series(out, index=events.index, dtype=float)


def test_summary_counts_match_the_generated_region(demo_run):
    workspace, summary = demo_run
    m = manifest(workspace)
    assert summary.rows_ingested["acs 2019 block_group"] == m["geography"]["block_groups"]["2010"]
    assert summary.rows_ingested["acs 2021 block_group"] == m["geography"]["block_groups"]["2020"]
    assert summary.rows_ingested["svi 2020 tract"] == m["geography"]["tracts"]["2020"]
    assert summary.rows_ingested["adi computed 2021"] == m["geography"]["block_groups"]["2020"]
    funnel = summary.funnel.set_index("outcome")
    history = m["patients"]["address_history"]
    assert funnel.loc["all", "address_periods"] == history["rows"]
    assert funnel.loc["linked", "address_periods"] == history["categories"]["geocoded"]
    assert funnel.loc["po_box", "address_periods"] == history["categories"]["po_box"]
    assert all(line.split(": ")[1].startswith("passed") for line in summary.validation.values())
    assert summary.training_frame_shape[0] == m["patients"]["encounters"]["rows"]


@pytest.mark.parametrize(("view", "level", "feature"), [
    ("acs_tract", "tract", "pct_below_poverty"),
    ("acs_block_group", "block_group", "median_household_income"),
    ("adi_block_group", "block_group", "adi_national_rank"),
    ("svi_tract_state", "tract", "svi_state_rpl_themes"),
    ("adi_acs_block_group_state", "block_group", "adi_acs_state_percentile"),
])
def test_training_frame_matches_independent_reference(demo_run, view, level, feature):
    workspace, summary = demo_run
    frame = pd.read_parquet(summary.training_frame_path)
    sample = frame.sample(1500, random_state=7)
    expected = reference_frame(workspace, sample, view, level, feature)
    got = sample[f"{view}__{feature}"].astype(float)
    assert expected.notna().sum() > 300  # the comparison is not vacuous
    pd.testing.assert_series_equal(got, expected, check_names=False)


def test_every_missing_value_has_a_reason(demo_run):
    _, summary = demo_run
    frame = pd.read_parquet(summary.training_frame_path)
    for col in [c for c in frame.columns if c.endswith("_missing")]:
        value = frame[col.removesuffix("_missing")]
        assert (value.isna() == frame[col].notna()).all(), col


def test_failed_validation_keeps_served_data(demo_run):
    workspace, _ = demo_run
    # The ADI's suite is small, so the failing publish is quick; what is checked is the gate.
    folder = workspace.published_dir("adi_block_group")
    before = {f: f.read_bytes() for f in folder.glob("**/*.parquet")}
    bad = pd.read_parquet(folder).head(3).assign(adi_national_rank=150)
    with pytest.raises(ValidationFailed, match="adi_national_rank"):
        publish(bad, adi_spec(), workspace)
    assert {f: f.read_bytes() for f in folder.glob("**/*.parquet")} == before
    assert any((workspace.quarantine / "adi_block_group").iterdir())
    events = pd.DataFrame({"patient_id": ["P000001"], "event_timestamp": ["2023-01-01"]})
    assert len(training_frame(events, store=feature_store(workspace), workspace=workspace)) == 1


def test_online_lookup_answers_with_tags(demo_run):
    _, summary = demo_run
    row = summary.online_lookup.iloc[0]
    assert row["acs_tract__vintage"] == 2021
    assert row["acs_tract__geoid"].startswith("99001")
    assert summary.online_tags["pct_below_poverty"]["domain"] == "economic_stability"


# -- the patients come in through the FHIR export ------------------------------------------------


def test_summary_reports_the_fhir_import(demo_run):
    workspace, summary = demo_run
    m = manifest(workspace)
    lines = {name: entry["lines"] for name, entry in m["fhir"]["files"].items()}
    assert summary.patients == {
        "addresses": dict.fromkeys(("read", "accepted"), m["patients"]["address_history"]["rows"])
        | {"rejected": 0},
        "events": {"read": lines["Encounter"], "accepted": lines["Encounter"], "rejected": 0},
        "demographics": {"read": m["n_patients"], "accepted": m["n_patients"], "rejected": 0},
        "answers": {"read": lines["Observation"], "accepted": lines["Observation"], "rejected": 0},
        "conditions": {"read": lines["Condition"], "accepted": lines["Condition"], "rejected": 0},
    }
    assert lines["Encounter"] == m["patients"]["encounters"]["rows"]
    assert summary.patient_rejects == {}


def test_demo_publishes_screened_needs(demo_run):
    workspace, summary = demo_run
    published = read_published(screened_needs_spec(), workspace)
    assert summary.rows_ingested["screened needs"] == len(published) > 0
    assert summary.validation["screened_needs"].split(": ")[1].startswith("passed")
    # Conditions follow positive screens only, so the patients are those screened.
    assert published["patient_id"].nunique() == manifest(workspace)["fhir"]["screening"][
        "patients_screened"]
    assert set(published["patient_id_scheme"]) == {"raw"}


def test_imported_address_history_reads_as_the_regions_csv(demo_run):
    workspace, _ = demo_run
    path = workspace.raw / "patients" / "address_history.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    imported, imported_rejects = read_address_history(path)
    region, region_rejects = read_address_history(
        workspace.raw / "demo_region" / "patients" / "address_history.csv")
    pd.testing.assert_frame_equal(imported, region)
    assert imported_rejects.empty and region_rejects.empty
    # FHIR period.end is read as the move day: the exclusive valid_to, the next period's start.
    moved = imported.groupby("patient_id").filter(lambda rows: len(rows) > 1)
    following = moved.groupby("patient_id")["valid_from"].shift(-1)
    assert len(moved) > 100
    assert (moved["valid_to"].dropna() == following.dropna()).all()
    assert moved["valid_to"].isna().sum() == moved["patient_id"].nunique()


def test_imported_events_are_the_regions_encounters(demo_run):
    workspace, summary = demo_run
    events = pd.read_csv(workspace.raw / "patients" / "events.csv", dtype={"patient_id": str})
    encounters = region_csv(workspace, "encounters")
    assert events["patient_id"].tolist() == encounters["patient_id"].tolist()
    assert events["event_timestamp"].tolist() == encounters["event_timestamp"].tolist()
    assert events["event_id"].tolist() == [encounter_id(n) for n in range(1, len(events) + 1)]
    assert events["event_type"].map({"AMB": "outpatient", "EMER": "ED", "IMP": "inpatient"}).tolist() \
        == encounters["encounter_type"].tolist()
    frame = pd.read_parquet(summary.training_frame_path)
    kept = frame[["patient_id", "event_timestamp", "encounter_type", "outcome"]]
    expected = encounters.assign(event_timestamp=pd.to_datetime(encounters["event_timestamp"], utc=True))
    pd.testing.assert_frame_equal(kept, expected, check_dtype=False)


@pytest.mark.parametrize(("event", "message"), [
    ("P1,2021-05-04T10:00:00Z,E0000002", "E0000002"),  # another encounter's id
    ("P2,2021-05-04T10:00:00Z,E0000001", "1 event"),  # another patient
    ("P1,2021-05-04T10:01:00Z,E0000001", "row 2"),  # another minute
])
def test_an_event_without_its_encounter_is_an_error(tmp_path, event, message):
    (tmp_path / "events.csv").write_text(f"patient_id,event_timestamp,event_id,event_type\n{event},AMB\n")
    (tmp_path / "encounters.csv").write_text(
        "patient_id,event_timestamp,encounter_type,outcome\nP1,2021-05-04T10:00:00Z,outpatient,0\n"
        "P1,2021-06-04T10:00:00Z,ED,1\n")
    with pytest.raises(InputError, match=message):
        labelled_events(tmp_path / "events.csv", tmp_path / "encounters.csv")
