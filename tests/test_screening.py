"""The screening catalog: every code mapped once, every mapping cited, values in vocabularies."""

from __future__ import annotations

import json

import pytest

from sdoh_sources import CatalogError, load_screening_catalog
from sdoh_sources._models import Vocabularies
from sdoh_sources.catalog import read_catalog_file
from sdoh_sources.screening import answer_key, check_screening_vocabularies
from tests.needs import real_path

CATALOG = load_screening_catalog()


def test_every_item_and_answer_is_mapped_once_per_instrument():
    for inst in CATALOG.instruments:
        codes = [i.code for i in inst.items]
        assert len(codes) == len(set(codes)), inst.name
        for item in inst.items:
            keys = [a.code for a in item.answers if a.code] + [
                answer_key(a.text) for a in item.answers if a.text
            ]
            assert len(keys) == len(set(keys)), (inst.name, item.code)
    conditions = [(c.system, c.code) for c in CATALOG.conditions]
    assert len(conditions) == len(set(conditions))


def test_every_mapping_names_a_citation():
    cited = {i.citation for i in CATALOG.instruments} | {c.citation for c in CATALOG.conditions}
    assert cited <= set(CATALOG.citations)
    assert all(len(text) > 40 for text in CATALOG.citations.values())


def test_metadata_is_in_the_vocabularies():
    vocabularies = read_catalog_file("vocabularies.yaml", Vocabularies)
    check_screening_vocabularies(CATALOG, vocabularies)
    assert CATALOG.equity.measurement_level == "individual"
    assert "screening rates" in CATALOG.equity.known_biases.lower()
    assert {d.gravity_category for d in CATALOG.domains} <= set(vocabularies.gravity_category)


def test_a_value_outside_the_vocabularies_is_named(tmp_path):
    text = real_catalog_text().replace("gravity_category: food_insecurity", "gravity_category: hunger")
    path = tmp_path / "screening.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"domains\.0\.gravity_category='hunger'"):
        load_screening_catalog(path)


def real_catalog_text() -> str:
    from importlib import resources

    return resources.files("sdoh_sources").joinpath("catalog", "screening.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("PRAPARE", "PRAPARE"),
        ("93042-0", "PRAPARE"),
        ("Hunger Vital Sign", "HVS"),
        ("88121-9", "HVS"),
        ("96777-8", "AHC-HRSN"),
        ("PHQ-9", None),
    ],
)
def test_instruments_are_found_by_name_alias_or_panel(label, name):
    found = CATALOG.instrument(label)
    assert (found.name if found else None) == name


@pytest.mark.parametrize(
    ("system", "code", "domain"),
    [
        ("http://hl7.org/fhir/sid/icd-10-cm", "Z59.41", "food_insecurity"),
        ("ICD10CM", "Z5941", "food_insecurity"),
        ("icd-10-cm", "Z59.01", "housing_instability"),
        ("icd-10-cm", "Z59.811", "housing_instability"),
        ("icd-10-cm", "Z59.12", "utilities"),
        ("icd-10-cm", "Z59.82", "transportation_insecurity"),
        ("icd-10-cm", "Z59.86", "financial_strain"),
        ("icd-10-cm", "Z63.0", None),  # relationship problems are not a safety finding
        ("http://snomed.info/sct", "706893006", "interpersonal_safety"),
        ("http://snomed.info/sct", "105531004", None),
        ("http://loinc.org", "Z59.41", None),
    ],
)
def test_condition_codes_map_to_domains(system, code, domain):
    assert CATALOG.condition_domain(system, code) == domain


def test_the_us_core_condition_example_is_food_insecurity():
    resource = json.loads(
        real_path("fhir_us_core_sdoh", "screening", "condition-SDOH-example.json").read_text(encoding="utf-8")
    )
    coding = resource["code"]["coding"][0]
    assert CATALOG.condition_domain(coding["system"], coding["code"]) == "food_insecurity"


def test_every_us_core_screening_answer_is_known_or_not_a_screened_item():
    # The answers of the example items that screen a domain must all be in the catalog.
    folder = real_path("fhir_us_core_sdoh", "screening")
    prapare = CATALOG.instrument("PRAPARE")
    for path in sorted(folder.glob("Observation-PRAPARE-*item-example-*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        item = prapare.item(resource["code"]["coding"][0]["code"])
        if item is not None:
            coding = resource["valueCodeableConcept"]["coding"][0]
            assert item.answer(coding["code"], coding["display"]) is not None, path.name
