"""The demo region's FHIR export: shapes, references, unequal screening rates, no names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ingestion.demo.fhir_export import (
    CONDITIONS,
    FHIR_FILES,
    NEEDS,
    SCREENING,
    screening_chance,
    write_fhir_export,
)
from ingestion.demo.region import generate_demo_region
from tests.needs import real_path

SCREENING_ITEMS = {"88122-7", "88123-5", "88124-3", "93033-9", "93030-5", "76501-6"}
DECLINED = {"LA30122-8", "LA15775-2"}
CLASS_TYPE = {"AMB": "outpatient", "EMER": "ED", "IMP": "inpatient"}
# Identifying fields a de-identified export must not carry.
IDENTIFYING = {"name", "telecom", "identifier", "photo", "contact"}


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo_fhir")
    return root, generate_demo_region(root)


@pytest.fixture(scope="module")
def resources(region) -> dict[str, list[dict]]:
    root, _ = region
    out = {}
    for name in FHIR_FILES:
        lines = (root / "fhir" / f"{name}.ndjson").read_text(encoding="utf-8").splitlines()
        out[name] = [json.loads(line) for line in lines]  # every line one JSON document
    return out


@pytest.fixture(scope="module")
def visits(region, resources) -> pd.DataFrame:
    """One row per encounter: its type, the patient's payer and language, screened or not."""
    root, _ = region
    screened = {o["encounter"]["reference"].split("/")[1] for o in resources["Observation"]}
    frame = pd.DataFrame({
        "encounter_id": [e["id"] for e in resources["Encounter"]],
        "patient_id": [e["subject"]["reference"].split("/")[1] for e in resources["Encounter"]],
        "encounter_type": [CLASS_TYPE[e["class"]["code"]] for e in resources["Encounter"]],
    })
    frame["screened"] = frame["encounter_id"].isin(screened)
    people = pd.read_csv(root / "patients/patients.csv", dtype=str)
    frame = frame.merge(people[["patient_id", "payer", "preferred_language"]], on="patient_id")
    frame["chance"] = [screening_chance(t, payer=p, language=lang) for t, p, lang in
                       zip(frame["encounter_type"], frame["payer"], frame["preferred_language"],
                           strict=True)]
    return frame


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def _references(resource: dict) -> list[str]:
    found = []
    for key in ("subject", "encounter", "beneficiary"):
        if key in resource:
            found.append(resource[key]["reference"])
    return found + [p["reference"] for p in resource.get("performer", [])]


def test_manifest_counts_every_file(region, resources):
    root, manifest = region
    entry = manifest["fhir"]
    assert entry["synthetic"] is True and entry["format"] == "FHIR R4 Bulk Data NDJSON"
    assert {k: v["lines"] for k, v in entry["files"].items()} == {
        k: len(v) for k, v in resources.items()}
    assert len(resources["Patient"]) == manifest["patients"]["patients"]["rows"]
    assert len(resources["Encounter"]) == manifest["patients"]["encounters"]["rows"]
    assert entry["conditions"]["lines"] == len(resources["Condition"]) > 0


def test_every_resource_has_its_type_a_unique_id_and_the_synthetic_tag(resources):
    for name, rows in resources.items():
        assert {r["resourceType"] for r in rows} == {name}
        assert len({r["id"] for r in rows}) == len(rows)
        assert all({"code": "HTEST"}.items() <= r["meta"]["tag"][0].items() for r in rows)


def test_every_reference_resolves(resources):
    ids = {f"{name}/{r['id']}" for name, rows in resources.items() for r in rows}
    refs = [ref for rows in resources.values() for r in rows for ref in _references(r)]
    assert refs and set(refs) <= ids


def test_no_names_or_other_identifiers(resources):
    for rows in resources.values():
        assert not IDENTIFYING & set().union(*(_keys(r) for r in rows))


def test_addresses_are_the_history_with_periods_and_coordinates(region, resources):
    root, _ = region
    history = pd.read_csv(root / "patients/address_history.csv", dtype=str, keep_default_na=False)
    addresses = [(p["id"], a) for p in resources["Patient"] for a in p["address"]]
    assert len(addresses) == len(history)
    for (pid, address), row in zip(addresses, history.itertuples(index=False), strict=True):
        assert (pid, address["use"], address["period"]["start"], address["period"].get("end", ""),
                address.get("line", [""])[0], address["postalCode"]) == (
            row.patient_id, "home", row.valid_from, row.valid_to, row.street, row.zip)
        geo = [e for e in address.get("extension", [])
               if e["url"] == "http://hl7.org/fhir/StructureDefinition/geolocation"]
        if row.latitude:
            assert [x["valueDecimal"] for x in geo[0]["extension"]] == [
                float(row.latitude), float(row.longitude)]
        else:
            assert geo == []


def test_patients_carry_us_core_race_ethnicity_language_and_birth_date(region, resources):
    root, _ = region
    people = pd.read_csv(root / "patients/patients.csv", dtype=str).set_index("patient_id")
    for patient in resources["Patient"]:
        person = people.loc[patient["id"]]
        assert patient["birthDate"] == person["birth_date"]
        assert patient["gender"] == {"F": "female", "M": "male"}[person["sex"]]
        ethnicity = patient["extension"][1]["extension"][0]["valueCoding"]["code"]
        assert (ethnicity == "2135-2") == (person["race_ethnicity"] == "Hispanic")
        language = patient["communication"][0]["language"]
        code = language["coding"][0]["code"] if "coding" in language else language["text"]
        assert code == {"English": "en", "Spanish": "es"}.get(person["preferred_language"],
                                                              person["preferred_language"])


def test_observations_copy_the_us_core_screening_item_shape(resources):
    example = json.loads(real_path(
        "fhir_us_core_sdoh", "screening", "Observation-HVS-item-example-88122-7.json").read_text())
    shape = set(example) - {"derivedFrom"}  # no QuestionnaireResponse is exported
    for obs in resources["Observation"]:
        assert shape <= set(obs)
        assert obs["category"] == example["category"]
        assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
        assert obs["code"]["coding"][0]["code"] in SCREENING_ITEMS
        assert obs["valueCodeableConcept"]["coding"][0]["code"].startswith("LA")


def test_effective_times_are_encounter_starts(resources):
    starts = {e["id"]: e["period"]["start"] for e in resources["Encounter"]}
    assert all(o["effectiveDateTime"] == starts[o["encounter"]["reference"].split("/")[1]]
               for o in resources["Observation"])


@pytest.mark.parametrize("group", ["encounter_type", "payer", "preferred_language"])
def test_screening_rates_come_out_as_configured(visits, group):
    for value, rows in visits.groupby(group):
        expected = rows["chance"].mean()
        tolerance = 4 * math.sqrt((rows["chance"] * (1 - rows["chance"])).sum()) / len(rows)
        assert abs(rows["screened"].mean() - expected) <= tolerance, value


def test_screening_is_unequal_in_the_configured_direction(visits):
    rate = {g: visits.groupby(g)["screened"].mean() for g in ("encounter_type", "payer",
                                                                "preferred_language")}
    assert rate["encounter_type"]["outpatient"] > rate["encounter_type"]["ED"]
    assert rate["payer"]["Medicaid"] > rate["payer"]["Commercial"]
    assert rate["preferred_language"]["English"] > rate["preferred_language"]["Spanish"]
    assert SCREENING["language"]["Spanish"] < 1  # the data says so too


def test_answers_depend_on_payer_and_some_are_declined(region, resources):
    root, manifest = region
    answers = manifest["fhir"]["screening"]["answers"]
    assert all(a["declined"] > 0 and a["positive"] > 0 for a in answers.values())
    people = pd.read_csv(root / "patients/patients.csv", dtype=str).set_index("patient_id")
    food = [(people.loc[o["subject"]["reference"].split("/")[1], "payer"],
             o["valueCodeableConcept"]["coding"][0]["code"] == "LA19952-3")
            for o in resources["Observation"] if o["code"]["coding"][0]["code"] == "88124-3"]
    at_risk = pd.DataFrame(food, columns=["payer", "at_risk"]).groupby("payer")["at_risk"].mean()
    assert NEEDS["payer"]["Medicaid"] > NEEDS["payer"]["Commercial"]
    assert at_risk["Medicaid"] > at_risk["Commercial"]
    declined = [o for o in resources["Observation"]
                if o["valueCodeableConcept"]["coding"][0]["code"] in DECLINED]
    assert declined


def test_conditions_are_icd10_sdoh_problems_from_a_positive_screen(resources):
    codes = {code for code, _ in CONDITIONS.values()}
    screens = {(o["subject"]["reference"], o["effectiveDateTime"]) for o in resources["Observation"]}
    for condition in resources["Condition"]:
        coding = condition["code"]["coding"][0]
        assert (coding["system"], coding["code"] in codes) == ("http://hl7.org/fhir/sid/icd-10-cm", True)
        assert (condition["subject"]["reference"], condition["onsetDateTime"]) in screens
        status = condition["clinicalStatus"]["coding"][0]["code"]
        assert (status == "resolved") == ("abatementDateTime" in condition)
        if status == "resolved":
            assert condition["abatementDateTime"] > condition["onsetDateTime"]


def test_same_seed_same_bytes_other_seed_other_screening(tmp_path):
    people = pd.DataFrame({"patient_id": ["P1"], "birth": [pd.Timestamp("1990-01-01").date()],
                           "sex": ["M"], "race_ethnicity": ["Hispanic"],
                           "preferred_language": ["Spanish"], "payer": ["Medicaid"], "z": [1.0]})
    visits = pd.DataFrame({"patient_id": ["P1"] * 200, "encounter_type": ["outpatient"] * 200,
                           "event_timestamp": pd.date_range("2020-01-01", periods=200, freq="D",
                                                            tz="UTC")})
    history = pd.DataFrame({"patient_id": ["P1"], "valid_from": ["2019-01-01"], "valid_to": [""],
                            "street": [""], "city": ["Synthdale"], "state": ["DS"],
                            "zip": ["00014"], "latitude": [""], "longitude": [""]})
    files = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_fhir_export(tmp_path / name, seed=seed, patients=people, encounters=visits,
                          history=history)
        files[name] = (tmp_path / name / "fhir/Observation.ndjson").read_bytes()
    assert files["a"] == files["b"] != files["c"]
