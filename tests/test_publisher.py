"""Tests of sdoh_sources.publisher: the source spec model and its loader."""

from __future__ import annotations

import pytest

from sdoh_sources import CatalogError, load_catalog
from sdoh_sources.publisher import (
    PublisherSource,
    publisher_source,
    publisher_source_names,
    z_score,
)


@pytest.mark.parametrize(("level", "z"), [(90, 1.645), (95, 1.96), (99, 2.576)])
def test_z_scores_are_the_conventional_ones(level, z):
    assert z_score(level) == z


@pytest.mark.parametrize("name", publisher_source_names())
def test_every_packaged_spec_loads_and_states_its_metadata(name):
    source = publisher_source(name)
    reasons = load_catalog().missing_reasons
    for release in source.releases:
        if release.available_from is None:  # no documented day: the citation says what to do
            assert "--available-from" in release.available.citation, (name, release.release)
        assert set(release.missing_codes.values()) <= set(reasons)
    for measure in source.measures:
        assert measure.known_biases.strip() and measure.intended_use.strip()
        if measure.estimate == "model":  # model-based estimates say how they were made
            assert "model" in measure.known_biases.lower(), measure.name


def test_measure_names_are_unique_across_sources():
    names = [m.name for n in publisher_source_names() for m in publisher_source(n).measures]
    names += [m.name for m in load_catalog().acs.measures]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_release_lookup_names_what_exists():
    eji = publisher_source("eji")
    assert eji.release(2024).geography_level == "tract"
    with pytest.raises(CatalogError, match=r"eji has no release 2019; known: 2022 \(tract\), 2024"):
        eji.release(2019)


def test_a_release_at_two_levels_needs_the_level():
    data = publisher_source("chr").model_dump()
    data["releases"] = [*data["releases"], data["releases"][0] | {"geography_level": "state"}]
    two = PublisherSource.model_validate(data)
    with pytest.raises(CatalogError, match=r"release 2010 exists at \['county', 'state'\]: pass the level"):
        two.release("2010")
    assert two.release("2010", "state").geography_level == "state"
    assert two.levels == ("county", "state")


def test_releases_may_not_repeat_or_name_unknown_measures():
    data = publisher_source("chr").model_dump()
    with pytest.raises(ValueError, match=r"releases repeat \(release, level, layout\)"):
        PublisherSource.model_validate(data | {"releases": [*data["releases"]] * 2})
    broken = data["releases"][0] | {"absent": ["chr_astrology"]}
    with pytest.raises(ValueError, match=r"names measures \['chr_astrology'\]"):
        PublisherSource.model_validate(data | {"releases": [broken]})


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(CatalogError, match="no publisher source 'astrology'; known sources: adi, chr"):
        publisher_source("astrology")
