"""ingestion.sources.fhir: the US Core SDOH examples, Bulk NDJSON and Bundles, rejects, privacy."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from needs import real_path

from ingestion.core.errors import InputError
from ingestion.geo.boundaries import load_boundaries
from ingestion.geo.linking import link_addresses
from ingestion.sources.fhir import read_fhir

US_CORE = ("fhir_us_core_sdoh",)
CAMBRIDGE = ("cambridge_ma_boundaries",)
UTC = "UTC"


def real_resources() -> list[dict]:
    files = sorted(real_path(*US_CORE, "patients").glob("*.json")) + \
        sorted(real_path(*US_CORE, "screening").glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def write_ndjson(folder: Path, resources: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for kind, lines in by_type.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def sorted_table(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)[:5], ignore_index=True).astype(str)


# -- the US Core examples, hand-checked -------------------------------------------------------


def test_patient_address_periods_become_history_rows():
    data = read_fhir(real_path(*US_CORE, "patients"))
    got = data.addresses.astype(object).where(data.addresses.notna(), None).values.tolist()
    assert got == [
        ["example", pd.Timestamp("2016-12-06", tz=UTC), pd.Timestamp("2020-07-22", tz=UTC),
         "49 MEADOW ST", "MOUNDS", "OK", "74047", None, None],
        ["example", pd.Timestamp("2020-07-22", tz=UTC), None,
         "183 MOUNTAIN VIEW ST", "MOUNDS", "OK", "74048", None, None],
    ]
    # The child's only address has no period: from when it held is unknown.
    assert data.rejects[["source_file", "patient_id", "field", "reason"]].values.tolist() == [
        ["patient-child-example.json", "child-example", "address[0].period.start",
         "no_period_start"]]
    assert data.counts()["addresses"] == {"read": 3, "accepted": 2, "rejected": 1}


def test_patient_demographics():
    data = read_fhir(real_path(*US_CORE, "patients"))
    got = data.demographics.set_index("patient_id")
    assert got.loc["example", "birth_date"] == pd.Timestamp("1987-02-20", tz=UTC)
    # Three OMB races and Hispanic ethnicity: hispanic; Spanish preferred.
    assert got.loc["example", ["sex", "race_ethnicity", "preferred_language"]].tolist() == [
        "F", "hispanic", "es"]
    assert got.loc["child-example", ["sex", "race_ethnicity"]].tolist() == ["M", "asian"]
    assert got["payer"].isna().all()


PRAPARE_TIME = pd.Timestamp("2022-03-29 01:30:40", tz=UTC)  # 2022-03-28T18:30:40-07:00
HVS_TIME = pd.Timestamp("2020-09-10 21:56:54.671", tz=UTC)


@pytest.mark.parametrize(("item_code", "expected"), [
    # an item of a sub-panel of PRAPARE: the outermost panel is the instrument
    ("71802-3", [(PRAPARE_TIME, "93025-5", "LA30190-5")]),
    # "I choose not to answer this question": the coded refusal, for the catalog
    ("93033-9", [(PRAPARE_TIME, "93025-5", "LA30122-8")]),
    # multi-select: one Observation per answer
    ("32624-9", [(PRAPARE_TIME, "93025-5", "LA30187-1"), (PRAPARE_TIME, "93025-5", "LA4457-3")]),
    ("93031-3", [(PRAPARE_TIME, "93025-5", "LA30126-9"), (PRAPARE_TIME, "93025-5", "LA30127-7")]),
    # Hunger Vital Sign items and the panel's own score
    ("88122-7", [(HVS_TIME, "88121-9", "LA28397-0")]),
    ("88121-9", [(HVS_TIME, "88121-9", None)]),
])
def test_screening_answers(item_code, expected):
    answers = read_fhir(real_path(*US_CORE, "screening")).answers
    rows = answers[answers["item_code"] == item_code].sort_values("answer_code")
    got = [(t, i, None if pd.isna(a) else a)
           for t, i, a in rows[["effective_time", "instrument", "answer_code"]].values]
    assert got == expected
    assert set(rows["patient_id"]) == {"example"}


def test_screening_text_and_simple_answers():
    answers = read_fhir(real_path(*US_CORE, "screening")).answers.set_index("item_code")
    assert answers.loc["56799-0", "answer_text"] == "Broadway"       # valueString
    assert answers.loc["63512-8", "answer_text"] == "6"              # valueQuantity
    assert answers.loc["88121-9", "answer_text"] == "2"              # the HVS panel score
    simple = answers.loc["160695008"]                                # us-core-simple-observation
    assert (simple["item_system"], simple["answer_text"], pd.isna(simple["instrument"])) == (
        "http://snomed.info/sct", "true", True)
    assert simple["effective_time"] == pd.Timestamp("2021-05-10 21:56:54.671", tz=UTC)


def test_screening_counts_condition_and_ignored():
    data = read_fhir(real_path(*US_CORE, "screening"))
    # 34 Observations: 28 with an answer, 6 PRAPARE panels without a value.
    assert data.counts()["answers"] == {"read": 28, "accepted": 28, "rejected": 0}
    assert data.ignored["Observation panel (hasMember, no value)"].startswith("6 found")
    assert data.ignored["Goal"].startswith("1 found")
    assert data.ignored["QuestionnaireResponse"].startswith("1 found")
    assert data.conditions.drop(columns="record").astype(object).where(
        data.conditions.notna(), None).values.tolist()[0] == [
        "example", "http://snomed.info/sct", "445281000124101", None, None,
        pd.Timestamp("2016-08-10 15:15:07", tz=UTC)]  # recordedDate 07:15:07-08:00
    assert data.conditions["record"].tolist() == ["Condition/condition-SDOH-example"]


# -- the same resources as Bulk NDJSON and as a Bundle ----------------------------------------


def as_bundle(resources: list[dict]) -> dict:
    """A transaction-style Bundle whose references are the entries' urn:uuid fullUrls."""
    urls = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:00000000-0000-0000-0000-{n:012d}"
            for n, r in enumerate(resources)}
    text = json.dumps(resources)
    for ref, url in urls.items():
        text = text.replace(f'"reference": "{ref}"', f'"reference": "{url}"')
    entries = [{"fullUrl": urls[f"{r['resourceType']}/{r['id']}"], "resource": r}
               for r in json.loads(text)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_ndjson_and_bundle_give_the_same_tables(tmp_path):
    resources = real_resources()
    direct = [read_fhir(real_path(*US_CORE, part)) for part in ("patients", "screening")]
    bundle = tmp_path / "bundle" / "export.json"
    bundle.parent.mkdir()
    bundle.write_text(json.dumps(as_bundle(resources)), encoding="utf-8")
    assert "urn:uuid:" in bundle.read_text(encoding="utf-8")
    for data in (read_fhir(write_ndjson(tmp_path / "bulk", resources)), read_fhir(bundle)):
        for table in ("addresses", "demographics", "answers", "conditions"):
            expected = pd.concat([getattr(d, table) for d in direct], ignore_index=True)
            pd.testing.assert_frame_equal(sorted_table(getattr(data, table)),
                                          sorted_table(expected))
        assert data.counts()["answers"] == {"read": 28, "accepted": 28, "rejected": 0}


def test_no_name_identifier_or_telecom_anywhere(tmp_path):
    resources = real_resources()
    private = {"Shaw", "Baxter", "Amy", "PharmD", "555-555-5555", "amy.shaw@example.com",
               "1032702", "Ronald Bone", "Dr. Ronald Bone"}
    for resource in resources:
        for entry in resource.get("identifier", []):
            private.add(entry["value"])
        for entry in resource.get("telecom", []):
            private.add(entry["value"])
    data = read_fhir(write_ndjson(tmp_path, resources))
    for name in ("addresses", "events", "demographics", "answers", "conditions", "rejects"):
        cells = getattr(data, name).astype(str).to_numpy().ravel()
        leaked = {cell for cell in cells for word in private if word in cell}
        assert not leaked, f"{name} holds {leaked}"


# -- rejects ----------------------------------------------------------------------------------


PATIENT = {"resourceType": "Patient", "id": "p1"}


def observation(**changes) -> dict:
    base = {"resourceType": "Observation", "id": "o1", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "88122-7"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2021-02-03",
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org",
                                                 "code": "LA28397-0"}]}}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def patient_with(address: dict) -> dict:
    return {**PATIENT, "address": [address]}


@pytest.mark.parametrize(("resource", "field", "reason"), [
    (observation(subject=None), "subject", "no_patient"),
    (observation(subject={"reference": "Group/g1"}), "subject", "no_patient"),
    (observation(effectiveDateTime="2021-02-30"), "effectiveDateTime", "unparseable_date"),
    (observation(effectiveDateTime="03/02/2021"), "effectiveDateTime", "unparseable_date"),
    (observation(effectiveDateTime=None), "effective[x]", "missing_value"),
    (observation(status="entered-in-error"), "status", "void_status"),
    (observation(valueCodeableConcept=None), "value[x]", "missing_value"),
    (patient_with({"use": "billing", "period": {"start": "2019-01-01"}}), "address[0].use",
     "not_a_residence"),
    (patient_with({"use": "work", "period": {"start": "2019-01-01"}}), "address[0].use",
     "not_a_residence"),
    (patient_with({"period": {"start": "2020-01-01", "end": "2019-01-01"}}),
     "address[0].period.end", "inverted_interval"),
    (patient_with({"period": {"start": "2020"}}), "address[0].period.start", "unparseable_date"),
    (patient_with({"period": {"start": "2020-13-01"}}), "address[0].period.start",
     "unparseable_date"),
    (patient_with({"use": "old", "city": "Cambridge"}), "address[0].period.start",
     "no_period_start"),
    ({"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}},
     "period.start", "missing_value"),
    ({"resourceType": "Observation"}, "id", "missing_id"),
])
def test_malformed_resources_rejected_with_reason(tmp_path, resource, field, reason):
    path = tmp_path / "export.ndjson"
    path.write_text(json.dumps(PATIENT) + "\n" + json.dumps(resource) + "\n", encoding="utf-8")
    rejects = read_fhir(path).rejects
    assert rejects[["source_file", "record", "field", "reason"]].values.tolist() == [
        ["export.ndjson", "export.ndjson:2", field, reason]]


def test_declined_answer_keeps_the_data_absent_reason(tmp_path):
    declined = observation(valueCodeableConcept=None, dataAbsentReason={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "code": "asked-declined", "display": "Asked But Declined"}]})
    path = write_ndjson(tmp_path, [PATIENT, declined])
    row = read_fhir(path).answers.iloc[0]
    assert (row["answer_system"], row["answer_code"], row["answer_text"]) == (
        "http://terminology.hl7.org/CodeSystem/data-absent-reason", "asked-declined",
        "Asked But Declined")


def test_malformed_lines_and_files_named_with_line(tmp_path):
    (tmp_path / "Patient.ndjson").write_text(
        json.dumps(PATIENT) + "\n\n{not json\n" + '["a list"]\n', encoding="utf-8")
    (tmp_path / "broken.json").write_text('{\n  "resourceType": "Patient",\n  oops\n}',
                                          encoding="utf-8")
    data = read_fhir(tmp_path)
    assert data.rejects[["record", "reason"]].values.tolist() == [
        ["Patient.ndjson:3", "malformed_json"], ["Patient.ndjson:4", "not_a_resource"],
        ["broken.json:3", "malformed_json"]]
    assert data.demographics["patient_id"].tolist() == ["p1"]


@pytest.mark.parametrize("path", ["missing", "empty"])
def test_no_fhir_input(tmp_path, path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no (such file|\.ndjson or \.json)"):
        read_fhir(tmp_path / path)


def test_encounters_coverage_and_geolocation(tmp_path):
    patient = patient_with({"use": "home", "period": {"start": "2019-01-01"}, "extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/geolocation", "extension": [
            {"url": "latitude", "valueDecimal": 42.37}, {"url": "longitude",
                                                         "valueDecimal": -71.11}]}]})
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "AMB"}, "subject": {"reference": "Patient/p1"},
                 "period": {"start": "2021-06-01T08:00:00-04:00"}}
    coverage = {"resourceType": "Coverage", "id": "c1", "beneficiary": {"reference": "Patient/p1"},
                "payor": [{"display": "Medicaid"}]}
    data = read_fhir(write_ndjson(tmp_path, [patient, encounter, coverage]))
    assert data.events.values.tolist() == [
        ["p1", pd.Timestamp("2021-06-01 12:00", tz=UTC), "e1", "AMB"]]
    assert data.addresses[["latitude", "longitude"]].values.tolist() == [[42.37, -71.11]]
    assert data.demographics["payer"].tolist() == ["Medicaid"]


# -- linking at the Cambridge boundary files' internal points ---------------------------------


def internal_points(level: str, year: int) -> pd.DataFrame:
    name = {"tract": "Tracts", "block_group": "BlockGroups"}[level]
    suffix = str(year)[2:]
    features = json.loads(real_path(*CAMBRIDGE, f"DEMOGRAPHICS_{name}{year}.geojson")
                          .read_text(encoding="utf-8"))["features"]
    return pd.DataFrame([{"geoid": f["properties"][f"GEOID{suffix}"],
                          "lat": float(f["properties"][f"INTPTLAT{suffix}"]),
                          "lon": float(f["properties"][f"INTPTLON{suffix}"])}
                         for f in features])


def fhir_patients(points: pd.DataFrame) -> list[dict]:
    return [{"resourceType": "Patient", "id": f"at-{row.geoid}", "address": [{
        "use": "home", "period": {"start": "2005-01-01"}, "extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/geolocation", "extension": [
                {"url": "latitude", "valueDecimal": row.lat},
                {"url": "longitude", "valueDecimal": row.lon}]}]}]}
        for row in points.itertuples()]


@pytest.fixture(scope="module")
def cambridge():
    return {year: load_boundaries(real_path(*CAMBRIDGE, f"DEMOGRAPHICS_BlockGroups{year}.geojson"),
                                  level="block_group", boundary_year=year)
            for year in (2010, 2020)}


@pytest.mark.parametrize(("level", "year"), [
    ("tract", 2010), ("tract", 2020), ("block_group", 2010), ("block_group", 2020)])
def test_internal_points_link_to_their_own_areas(tmp_path, cambridge, level, year):
    # The 2010 block-group file also holds slivers of neighbouring towns' block groups (tracts
    # 3507-3515, 3561-3573, 3703), clipped at the city line: their TIGER internal points lie
    # outside the sliver. Only the city's own areas (those of its tracts) are checked.
    points = internal_points(level, year)
    points = points[points["geoid"].str[:11].isin(internal_points("tract", year)["geoid"])]
    data = read_fhir(write_ndjson(tmp_path, fhir_patients(points)))
    assert len(data.addresses) == len(points) and data.rejects.empty
    linked = link_addresses(data.addresses, cambridge).set_index("patient_id")
    column = f"{level}_geoid_{year}"
    expected = pd.Series(points["geoid"].to_numpy(), index="at-" + points["geoid"])
    assert linked.loc[expected.index, column].tolist() == expected.tolist()
    # Every point also lands in a tract and block group of the other vintage.
    other = {2010: 2020, 2020: 2010}[year]
    assert linked[f"block_group_geoid_{other}"].notna().all()
    assert (linked[f"tract_geoid_{other}"] == linked[f"block_group_geoid_{other}"].str[:11]).all()


@pytest.mark.parametrize(("year", "other"), [(2020, 2010), (2010, 2020)])
def test_tracts_that_changed_in_2020_link_on_both_vintages(tmp_path, cambridge, year, other):
    # Tracts of one vintage whose number the other lacks (2010: 3534, 3535, 3546, 3549; 2020:
    # 3546.01/.02, 3549.01/.02 and 3594): each internal point links to its own tract on its
    # vintage, and to an existing tract of the other.
    tracts = {y: internal_points("tract", y) for y in (2010, 2020)}
    changed = tracts[year][~tracts[year]["geoid"].isin(tracts[other]["geoid"])]
    assert len(changed) >= 2
    data = read_fhir(write_ndjson(tmp_path, fhir_patients(changed)))
    linked = link_addresses(data.addresses, cambridge).set_index("patient_id")
    linked = linked.loc["at-" + changed["geoid"]]
    assert linked[f"tract_geoid_{year}"].tolist() == changed["geoid"].tolist()
    assert linked[f"tract_geoid_{other}"].isin(tracts[other]["geoid"]).all()
