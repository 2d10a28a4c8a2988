"""Screening answers and SDOH Conditions -> carried-forward domain states, hand-checked."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ingestion.core.datasets import screened_needs_spec
from ingestion.core.patient_data import ANSWER_COLUMNS, CONDITION_COLUMNS
from ingestion.core.workspace import Workspace
from ingestion.derive.screening import screening_states, state_columns
from ingestion.gate.publish import publish
from tests.needs import real_path

NO_CONDITIONS = pd.DataFrame(columns=list(CONDITION_COLUMNS))
NO_ANSWERS = pd.DataFrame(columns=list(ANSWER_COLUMNS))


def answer(patient, time, item, text=None, code=None, instrument=None):
    return [
        patient,
        time,
        instrument,
        "http://loinc.org",
        item,
        "http://loinc.org" if code else None,
        code,
        text,
        "test",
    ]


def answers(*rows):
    return pd.DataFrame(list(rows), columns=list(ANSWER_COLUMNS))


def condition(patient, code, onset, abatement=None, system="http://hl7.org/fhir/sid/icd-10-cm"):
    return pd.DataFrame(
        [[patient, system, code, onset, abatement, None, "test"]], columns=list(CONDITION_COLUMNS)
    )


def at(states, patient, time, domain):
    """The (state, instrument) in force at ``time``: the last row at or before it."""
    rows = states[
        (states["patient_id"] == patient) & (states["effective_time"] <= pd.Timestamp(time, tz="UTC"))
    ]
    if rows.empty:
        return "not_screened", None
    last = rows.iloc[-1]
    return last[f"{domain}_state"], last[f"{domain}_instrument"]


# A minimal extraction of US Core Observations (the FHIR reader is built elsewhere): code,
# valueCodeableConcept and effectiveDateTime; panel members take the panel's code as instrument.
def us_core_answers(names: list[str], panel: str | None = None) -> pd.DataFrame:
    folder = real_path("fhir_us_core_sdoh", "screening")
    members, rows = {}, []
    if panel:
        panel_resource = json.loads((folder / panel).read_text(encoding="utf-8"))
        members = {
            m["reference"].split("/")[1]: panel_resource["code"]["coding"][0]["code"]
            for m in panel_resource["hasMember"]
        }
    for name in names:
        r = json.loads((folder / name).read_text(encoding="utf-8"))
        if "valueCodeableConcept" not in r:
            continue
        value = r["valueCodeableConcept"]["coding"][0]
        rows.append(
            [
                "example",
                r["effectiveDateTime"],
                members.get(r["id"]),
                r["code"]["coding"][0]["system"],
                r["code"]["coding"][0]["code"],
                value["system"],
                value["code"],
                value["display"],
                f"Observation/{r['id']}",
            ]
        )
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def test_us_core_prapare_items_under_their_panels():
    folder = real_path("fhir_us_core_sdoh", "screening")
    frames = [
        us_core_answers(
            [
                m["reference"].replace("/", "-") + ".json"
                for m in json.loads((folder / panel).read_text(encoding="utf-8"))["hasMember"]
            ],
            panel,
        )
        for panel in (
            "Observation-PRAPARE-panel-example-93042-0.json",
            "Observation-PRAPARE-panel-example-93041-2.json",
            "Observation-PRAPARE-panel-example-93039-6.json",
        )
    ]
    states, unmapped = screening_states(pd.concat(frames, ignore_index=True), NO_CONDITIONS)
    assert len(states) == 1
    row = states.iloc[0]
    assert row["effective_time"] == pd.Timestamp("2022-03-29T01:30:40Z")  # 18:30:40-07:00
    # 71802-3 "I do not have housing" is positive; 93033-9 declined does not undo it.
    assert (row["housing_instability_state"], row["housing_instability_instrument"]) == (
        "positive",
        "PRAPARE",
    )
    # 93030-5: "Yes, it has kept me from non-medical meetings ..."
    assert row["transportation_insecurity_state"] == "positive"
    # 93031-3 multi-select: Clothing and Child care -> material hardship; food, utilities negative.
    assert row["material_hardship_state"] == "positive"
    assert row["food_insecurity_state"] == row["utilities_state"] == "negative"
    # 93026-3 "No" (not safe where you live) is positive even though 76501-6 is "No".
    assert row["interpersonal_safety_state"] == "positive"
    assert row["financial_strain_state"] == "not_screened"
    assert row["housing_instability_screened_at"] == row["effective_time"]
    # Education, employment, insurance, jail and refugee items screen no domain: counted by item.
    assert set(unmapped["code"]) == {"82589-3", "67875-5", "76437-3", "93027-1", "93028-9"}
    assert set(unmapped["reason"]) == {"item_not_in_catalog"}


def test_a_declined_item_alone_is_declined():
    rows = us_core_answers(["Observation-PRAPARE-item-example-93033-9.json"])
    states, _ = screening_states(rows, NO_CONDITIONS)
    assert states["housing_instability_state"].tolist() == ["declined"]
    assert states["housing_instability_instrument"].tolist() == ["PRAPARE"]


def test_us_core_hunger_vital_sign_panel():
    names = [f"Observation-HVS-item-example-{c}.json" for c in ("88122-7", "88123-5", "88124-3")]
    states, unmapped = screening_states(
        us_core_answers(names, "Observation-HVS-panel-example-88121-9.json"), NO_CONDITIONS
    )
    assert states[
        ["effective_time", "food_insecurity_state", "food_insecurity_instrument"]
    ].values.tolist() == [[pd.Timestamp("2020-09-10T21:56:54.671Z"), "positive", "HVS"]]
    assert unmapped.empty


def test_an_item_without_a_panel_takes_the_first_instrument_with_its_answer():
    states, _ = screening_states(
        answers(
            answer("a", "2023-01-01", "88122-7", "Never true", "LA28398-8"),
            answer("b", "2023-01-01", "71802-3", "I have a steady place to live", "LA31993-1"),
        ),
        NO_CONDITIONS,
    )
    assert at(states, "a", "2023-01-01", "food_insecurity") == ("negative", "HVS")
    assert at(states, "b", "2023-01-01", "housing_instability") == ("negative", "AHC-HRSN")


def test_us_core_multi_select_rows_score_together():
    names = [f"Observation-PRAPARE-multiselect-item-example-93031-3-answer{n}.json" for n in (0, 1)]
    states, _ = screening_states(us_core_answers(names), NO_CONDITIONS)
    assert states[["material_hardship_state", "food_insecurity_state"]].values.tolist() == [
        ["positive", "negative"]
    ]


@pytest.fixture(scope="module")
def synthea_states():
    obs = pd.read_csv(real_path("synthea_ma", "observations.csv"))
    survey = obs[obs["CATEGORY"] == "survey"]
    rows = pd.DataFrame(
        {
            "patient_id": survey["PATIENT"],
            "effective_time": survey["DATE"],
            "instrument": None,
            "item_system": "http://loinc.org",
            "item_code": survey["CODE"],
            "answer_system": None,
            "answer_code": None,
            "answer_text": survey["VALUE"],
            "record": "observations.csv:" + (survey.index + 2).astype(str),
        }
    )
    return screening_states(rows, NO_CONDITIONS)


# Hand-read from observations.csv (CATEGORY survey, PRAPARE items as text answers).
SYNTHEA = [
    # 5f8d3e13: 93031-3 "Utilities" (2023-05-07), "I choose not to answer" (2023-11-26), "Phone" (2024-01-21)
    ("5f8d3e13-bc80-dd66-0f1b-d24f9692a697", "2023-05-06", "utilities", "not_screened"),
    ("5f8d3e13-bc80-dd66-0f1b-d24f9692a697", "2023-05-08", "utilities", "positive"),
    ("5f8d3e13-bc80-dd66-0f1b-d24f9692a697", "2023-11-27", "utilities", "declined"),
    ("5f8d3e13-bc80-dd66-0f1b-d24f9692a697", "2024-01-22", "utilities", "negative"),
    ("5f8d3e13-bc80-dd66-0f1b-d24f9692a697", "2024-01-22", "material_hardship", "positive"),
    # 1d3d16ce: worried about losing housing "Yes", afraid of partner "Yes" (2023-05-17)
    ("1d3d16ce-a3a4-5e9e-1b4d-58a391895443", "2023-05-18", "housing_instability", "positive"),
    ("1d3d16ce-a3a4-5e9e-1b4d-58a391895443", "2023-05-18", "interpersonal_safety", "positive"),
    ("1d3d16ce-a3a4-5e9e-1b4d-58a391895443", "2023-05-18", "transportation_insecurity", "negative"),
    ("1d3d16ce-a3a4-5e9e-1b4d-58a391895443", "2023-05-18", "food_insecurity", "declined"),
    # 5a595dfb: 93031-3 "Food" (2023-10-11)
    ("5a595dfb-9ecf-d4ac-2893-b3e1ced04951", "2023-10-12", "food_insecurity", "positive"),
]


@pytest.mark.parametrize(("patient", "time", "domain", "state"), SYNTHEA)
def test_named_synthea_patients(synthea_states, patient, time, domain, state):
    assert at(synthea_states[0], patient, time, domain)[0] == state


def test_synthea_rows_and_what_maps_to_nothing(synthea_states):
    states, unmapped = synthea_states
    assert states["patient_id"].nunique() == 16 and len(states) == 18  # 5f8d3e13 screened 3 times
    counted = unmapped.set_index("code")["rows"]
    assert counted["63586-2"] == 18 and counted["72166-2"] == 27  # income, tobacco: no domain


def test_a_newer_answer_replaces_an_older_one():
    states, _ = screening_states(
        answers(answer("p", "2023-01-01", "93033-9", "Yes"), answer("p", "2023-06-01", "93033-9", "No")),
        NO_CONDITIONS,
    )
    assert states["housing_instability_state"].tolist() == ["positive", "negative"]
    assert states["housing_instability_screened_at"].tolist() == [
        pd.Timestamp("2023-01-01", tz="UTC"),
        pd.Timestamp("2023-06-01", tz="UTC"),
    ]


def test_a_condition_is_positive_from_onset_to_abatement_then_falls_back():
    states, _ = screening_states(
        answers(answer("p", "2023-01-01", "88122-7", "Never true")),
        condition("p", "Z59.41", "2023-03-01", "2023-09-01"),
    )
    assert states[
        ["effective_time", "food_insecurity_state", "food_insecurity_instrument"]
    ].values.tolist() == [
        [pd.Timestamp("2023-01-01", tz="UTC"), "negative", "HVS"],
        [pd.Timestamp("2023-03-01", tz="UTC"), "positive", "condition:icd10cm"],
        [pd.Timestamp("2023-09-01", tz="UTC"), "negative", "HVS"],
    ]
    assert states["food_insecurity_screened_at"].iloc[2] == pd.Timestamp("2023-01-01", tz="UTC")


def test_a_condition_without_onset_counts_from_its_recorded_date():
    conditions = condition("p", "706893006", None, system="http://snomed.info/sct")
    conditions["recorded"] = "2016-08-10T07:15:07-08:00"
    states, _ = screening_states(NO_ANSWERS, conditions)
    assert states[["effective_time", "interpersonal_safety_state"]].values.tolist() == [
        [pd.Timestamp("2016-08-10T15:15:07Z"), "positive"]
    ]


@pytest.mark.parametrize(
    ("event", "state"),
    [
        ("2023-04-30T23:59:59Z", "not_screened"),
        ("2023-05-01T00:00:00Z", "positive"),
        ("2023-05-02T00:00:00Z", "positive"),
    ],
)
def test_an_event_before_on_and_after_the_answer(event, state):
    states, _ = screening_states(
        answers(answer("p", "2023-05-01T00:00:00Z", "96779-4", "Already shut off")), NO_CONDITIONS
    )
    assert at(states, "p", event, "utilities")[0] == state


def test_rows_are_sorted_and_a_repeated_answer_renews_screened_at():
    states, _ = screening_states(
        answers(
            answer("b", "2023-02-01", "93033-9", "No"),
            answer("a", "2023-03-01", "93033-9", "No"),
            answer("a", "2023-01-01", "93033-9", "No"),
        ),
        NO_CONDITIONS,
    )
    assert states[["patient_id", "effective_time"]].values.tolist() == [
        ["a", pd.Timestamp("2023-01-01", tz="UTC")],
        ["a", pd.Timestamp("2023-03-01", tz="UTC")],
        ["b", pd.Timestamp("2023-02-01", tz="UTC")],
    ]
    assert states["housing_instability_state"].tolist() == ["negative"] * 3


def test_overlapping_conditions_keep_the_latest_onset_in_force():
    # An ICD and a SNOMED food Condition overlapping: the state stays positive throughout;
    # screened_at and instrument follow the latest onset still in force.
    conditions = pd.concat(
        [
            condition("p", "Z59.41", "2023-01-01"),
            condition("p", "733423003", "2023-02-01", "2023-03-01", system="http://snomed.info/sct"),
        ],
        ignore_index=True,
    )
    states, _ = screening_states(NO_ANSWERS, conditions)
    assert states["effective_time"].tolist() == [
        pd.Timestamp("2023-01-01", tz="UTC"),
        pd.Timestamp("2023-02-01", tz="UTC"),
        pd.Timestamp("2023-03-01", tz="UTC"),
    ]
    assert states["food_insecurity_state"].tolist() == ["positive"] * 3
    assert states["food_insecurity_instrument"].tolist() == [
        "condition:icd10cm",
        "condition:snomed",
        "condition:icd10cm",
    ]


def test_an_unknown_answer_is_counted_not_guessed():
    states, unmapped = screening_states(
        answers(answer("p", "2023-01-01", "76501-6", "Unsure")), NO_CONDITIONS
    )
    assert states.empty
    assert unmapped[["code", "reason", "rows"]].values.tolist() == [["76501-6", "answer_not_in_catalog", 1]]


def test_the_states_publish_through_the_gate(tmp_path, synthea_states):
    states = synthea_states[0].assign(patient_id_scheme="raw")
    assert tuple(states.columns[:-1]) == state_columns()
    result = publish(states, screened_needs_spec(), Workspace(tmp_path))
    assert result.n_rows == 18


@pytest.mark.parametrize(
    ("texts", "state"),
    [
        (("Sometimes", "Sometimes", "Sometimes", "Rarely"), "positive"),  # 3 + 3 + 3 + 2 = 11
        (("Sometimes", "Sometimes", "Rarely", "Rarely"), "negative"),  # 10
        (("Frequently", "Never", "Never", "Never"), "negative"),  # 8: a sum, not any item
    ],
)
def test_ahc_hrsn_safety_is_a_summed_score(texts, state):
    rows = [
        answer("p", "2023-01-01", item, text, instrument="96777-8")
        for item, text in zip(("95618-5", "95617-7", "95616-9", "95615-1"), texts, strict=True)
    ]
    states, _ = screening_states(answers(*rows), NO_CONDITIONS)
    assert at(states, "p", "2023-01-01", "interpersonal_safety") == (state, "AHC-HRSN")


def test_a_positive_instrument_decides_over_a_negative_one_at_the_same_instant():
    states, _ = screening_states(
        answers(
            answer("p", "2023-01-01", "76501-6", "No"),
            answer("p", "2023-01-01", "95618-5", "Frequently", instrument="AHC-HRSN"),
            answer("p", "2023-01-01", "95617-7", "Frequently", instrument="AHC-HRSN"),
            answer("p", "2023-01-01", "95616-9", "Frequently", instrument="AHC-HRSN"),
        ),
        NO_CONDITIONS,
    )
    assert at(states, "p", "2023-01-01", "interpersonal_safety") == ("positive", "AHC-HRSN")
