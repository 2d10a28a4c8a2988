"""Every catalog file has a model and a loader; a broken copy names the file and the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from equity.fairness import load_thresholds
from ingestion.core.datasets import BOUNDARY_VINTAGES
from ingestion.core.errors import InputError
from sdoh_sources import (
    CatalogError,
    Source,
    boundary_vintages,
    load_adi_method,
    load_boundary_catalog,
    load_catalog,
    load_fairness_thresholds,
    load_rurality_catalog,
    load_screening_catalog,
    load_svi_catalog,
    load_zip_crosswalk_catalog,
    read_catalog_file,
)
from sdoh_sources._models import MissingReasons, ReleaseCalendar, Vocabularies
from sdoh_sources.publisher import publisher_source, publisher_source_names, source_file

CATALOG = resources.files("sdoh_sources").joinpath("catalog")


def _model_loader(name, model):
    return lambda path: read_catalog_file(name, model, path=path)


# The loader of each file, given a copy's path (load_catalog reads the first five this way).
LOADERS = {
    "acs.yaml": _model_loader("acs.yaml", Source),
    "missing_reasons.yaml": _model_loader("missing_reasons.yaml", MissingReasons),
    "release_calendar.yaml": _model_loader("release_calendar.yaml", ReleaseCalendar),
    "vocabularies.yaml": _model_loader("vocabularies.yaml", Vocabularies),
    "adi_computed.yaml": load_adi_method,
    "boundaries.yaml": load_boundary_catalog,
    "fairness_thresholds.yaml": load_fairness_thresholds,
    "rurality.yaml": load_rurality_catalog,
    "screening.yaml": load_screening_catalog,
    "svi.yaml": load_svi_catalog,
    "zip_crosswalks.yaml": load_zip_crosswalk_catalog,
} | {source_file(name): (lambda path, name=name: publisher_source(name, path=path))
     for name in publisher_source_names()}
DELETE = object()

# (file, field path, new value or DELETE): a wrong type, a missing key and an unknown key each.
BREAKS = [
    ("acs.yaml", "measures.0.label", [1, 2]),
    ("acs.yaml", "title", DELETE),
    ("acs.yaml", "measures.3.colour", "red"),
    ("adi_computed.yaml", "scaling.mean", "high"),
    ("adi_computed.yaml", "method_version", DELETE),
    ("adi_computed.yaml", "ranking.colour", "red"),
    ("boundaries.yaml", "layers.tract.tiger.0.geoid_field", 5),
    ("boundaries.yaml", "layers.county.cb.0.path", DELETE),
    ("boundaries.yaml", "layers.zcta.tiger.1.colour", "red"),
    ("fairness_thresholds.yaml", "min_group_size", "many"),
    ("fairness_thresholds.yaml", "thresholds.calibration_gap.max", DELETE),
    ("fairness_thresholds.yaml", "colour", "red"),
    ("missing_reasons.yaml", "reliability.rules.cv_12_40.high", "twelve"),
    ("missing_reasons.yaml", "reliability.default_rule", DELETE),
    ("missing_reasons.yaml", "reliability.colour", "red"),
    ("rurality.yaml", "schemes.urban_rural.code", "tertiary"),
    ("rurality.yaml", "codes.citation", DELETE),
    ("rurality.yaml", "schemes.urban_rural.colour", "red"),
    ("screening.yaml", "domains.0.lookback_days", "a year"),
    ("screening.yaml", "equity.known_biases", DELETE),
    ("screening.yaml", "instruments.0.items.0.colour", "red"),
    ("release_calendar.yaml", "acs5.2.release_date", "soon"),
    ("release_calendar.yaml", "acs5.0.boundary_vintage", DELETE),
    ("release_calendar.yaml", "acs5.1.colour", "red"),
    ("svi.yaml", "method.flag_threshold", "high"),
    ("svi.yaml", "releases.0.acs_vintage", DELETE),
    ("svi.yaml", "columns.EP_.colour", "red"),
    ("vocabularies.yaml", "direction", "up"),
    ("vocabularies.yaml", "fairness_role", DELETE),
    ("vocabularies.yaml", "colour", ["red"]),
    ("zip_crosswalks.yaml", "hud_boundary_years.0.from_quarter", "first"),
    ("zip_crosswalks.yaml", "styles.hud_tract.target_level", DELETE),
    ("zip_crosswalks.yaml", "zip_types.military.colour", "red"),
    *((source_file(name), field, value) for name in publisher_source_names()
      for field, value in (("measures.0.label", [1, 2]), ("license", DELETE),
                           ("releases.0.colour", "red"))),
]


def _broken_copy(tmp_path: Path, name: str, field: str, value: object) -> Path:
    data = yaml.safe_load(CATALOG.joinpath(*name.split("/")).read_text(encoding="utf-8"))
    *parents, last = field.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, dict) and last not in node and last.lstrip("-").isdigit():
        last = int(last)  # a number key, e.g. a Census annotation code
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    path = tmp_path / Path(name).name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_every_catalog_file_has_a_loader():
    files = [f.name for f in CATALOG.iterdir() if f.name.endswith(".yaml")]
    files += [f"sources/{f.name}" for f in CATALOG.joinpath("sources").iterdir()]
    assert sorted(LOADERS) == sorted(files)
    assert {name for name, _, _ in BREAKS} == set(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_an_unchanged_copy_loads(tmp_path, name):
    path = tmp_path / Path(name).name
    path.write_text(CATALOG.joinpath(*name.split("/")).read_text(encoding="utf-8"), encoding="utf-8")
    assert LOADERS[name](path) == LOADERS[name](None)


@pytest.mark.parametrize(("name", "field", "value"), BREAKS,
                         ids=[f"{n}:{f}" for n, f, _ in BREAKS])
def test_a_broken_copy_names_the_file_and_the_field(tmp_path, name, field, value):
    path = _broken_copy(tmp_path, name, field, value)
    with pytest.raises(CatalogError) as caught:
        LOADERS[name](path)
    message = str(caught.value)
    assert message.startswith(f"{path} is invalid:")
    # pydantic names the field by its path; a check on a whole mapping names its key.
    assert field in message or field.rsplit(".", 1)[0] in message, message


def test_a_copy_that_is_not_yaml_is_named(tmp_path):
    path = tmp_path / "boundaries.yaml"
    path.write_text("layers: [", encoding="utf-8")
    with pytest.raises(CatalogError, match=f"{path} is not valid YAML"):
        load_boundary_catalog(path)


def test_the_packaged_files_are_read_once():
    assert load_boundary_catalog() is load_boundary_catalog()
    assert read_catalog_file("acs.yaml", Source) is load_catalog().acs


def test_a_users_thresholds_file_is_an_input_error_naming_the_field(tmp_path):
    path = _broken_copy(tmp_path, "fairness_thresholds.yaml", "min_group_size", "many")
    with pytest.raises(InputError, match=rf"{path} is invalid:\n.*\nmin_group_size\n"):
        load_thresholds(path)


def test_boundary_vintages_come_from_the_release_calendar():
    calendar = load_catalog().calendar
    assert BOUNDARY_VINTAGES == boundary_vintages() == tuple(sorted(
        {r.boundary_vintage for releases in calendar.values() for r in releases})) == (2010, 2020)


# Checks across fields name the path in their message.
CROSS_CHECKS = [
    ("boundaries.yaml", "layers.tract.tiger.0.sources", ["nowhere"],
     r"layers\.tract\.tiger\.0: sources \['nowhere'\] are not in the sources table"),
    ("boundaries.yaml", "layers.tract.tiger.0.kind", "cb",
     r"layers\.tract\.tiger\.0: unknown keys \['kind'\]"),
    ("zip_crosswalks.yaml", "styles.uds_zcta.zip_types.M", "martian",
     r"styles\.uds_zcta\.zip_types maps to unknown zip types \['martian'\]"),
    ("rurality.yaml", "schemes.urban_rural.groups.rural", [5, 6, 7, 8, 9, 10, 10.1],
     r"schemes\.urban_rural\.groups: each primary code must be in one group; in several: \[\], "
     r"in none: \[4\.0\], not a primary code: \[10\.1\]"),
    ("rurality.yaml", "default_scheme", "frontier", r"default_scheme 'frontier' is not one of"),
    ("screening.yaml", "instruments.0.items.1.code", "71802-3",
     r"instruments\.0: item 71802-3 listed twice"),
    ("screening.yaml", "conditions.0.domain", "hunger", r"conditions\.0: unknown domain 'hunger'"),
    ("screening.yaml", "instruments.2.positive_at_least", {},
     r"AHC-HRSN: domains scored by points \['interpersonal_safety'\] must be the keys"),
    ("missing_reasons.yaml", "reliability.default_rule", "cv_99",
     r"reliability\n.*default_rule 'cv_99' is not one of \['cv_12_40', 'cv_15_30'\]"),
    ("missing_reasons.yaml", "census_estimate_annotations.-666666666", "astrology",
     r"census_estimate_annotations map to reasons \['astrology'\] that are not under reasons"),
    ("sources/eji.yaml", "missing_codes.-999", "astrology",
     r"eji\.yaml: missing_codes map to reasons \['astrology'\] that are not in"),
    ("sources/eji.yaml", "measures.0.domain", "astrology",
     r"eji\.yaml: catalog values outside their vocabularies:\n  eji\.eji_rank\.domain='astrology'"),
    ("sources/eji.yaml", "source", "ejx",
     r"eji\.yaml: source is 'ejx'; it must be the file's name 'eji'"),
    ("sources/chr.yaml", "releases.0.geoid.parts", [{"column": "STATEFP", "width": 2}],
     r"releases\.0\.geoid\n.*give the GEOID as one column, as parts or as alternatives"),
    ("sources/adi.yaml", "releases.0.geoid.alternatives.1.pattern", r"G\d{14}",
     r"releases\.0\.geoid\.alternatives\.1\n.*pattern 'G\\\\d\{14\}' has no groups"),
    ("sources/adi.yaml", "releases.0.geoid.alternatives.0.summary", "99",
     r"releases\.0\.geoid\n.*an alternative is a column or parts; give summary on the rule"),
    ("sources/adi.yaml", "releases.1.file_name", "_(2020_ADI_",
     r"releases\.1\.file_name\n.*file_name '_\(2020_ADI_' is not a regular expression"),
    ("sources/chr.yaml", "measures.0.bounds.column", "CI",
     r"give the interval as low and high columns, or as one column"),
]


@pytest.mark.parametrize(("name", "field", "value", "match"), CROSS_CHECKS,
                         ids=[f"{n}:{f}" for n, f, _, _ in CROSS_CHECKS])
def test_a_check_across_fields_names_the_path(tmp_path, name, field, value, match):
    path = _broken_copy(tmp_path, name, field, value)
    with pytest.raises(CatalogError, match=match):
        LOADERS[name](path)
