"""Variable codes across ACS 5-year vintages 2014-2024: every change the catalog encodes.

Each test pins the exact variables on both sides of one change; the evidence for each code is
in the rule's ``evidence`` in sdoh_sources/catalog/acs.yaml.
"""

import datetime as dt

import pytest

from sdoh_sources import CatalogError, load_catalog
from sdoh_sources._models import Measure, VintageRule
from sdoh_sources.catalog import check_vintage_rules, release_in_force

VINTAGES = tuple(range(2014, 2025))
# measure -> {vintage: variables read}; () means not available in that vintage.
CHANGES = {
    # B28002 (internet subscriptions) is first published in the 2013-2017 5-year.
    "pct_no_internet_subscription": {
        2014: (), 2016: (),
        2017: ("B28002_001", "B28002_012", "B28002_013"),
        2024: ("B28002_001", "B28002_012", "B28002_013")},
    # DP02 "With a disability" moved from DP02_0071 to DP02_0072 in 2019; its 2024 label is not
    # verified, so 2024 is not available.
    "pct_disability": {2014: ("DP02_0071P",), 2018: ("DP02_0071P",), 2019: ("DP02_0072P",),
                       2023: ("DP02_0072P",), 2024: ()},
    # DP02 "Speak English less than very well" moved twice: 0113 -> 0114 (2019) -> 0115 (2020);
    # DP02_0115P keeps its label in 2024.
    "pct_limited_english_speakers": {2014: ("DP02_0113P",), 2018: ("DP02_0113P",),
                                     2019: ("DP02_0114P",), 2020: ("DP02_0115P",),
                                     2024: ("DP02_0115P",)},
    # S2701_C05_001 is the percent uninsured only from 2015 (the percent insured before); the
    # same label in 2024.
    "pct_uninsured_published": {2014: (), 2015: ("S2701_C05_001",), 2024: ("S2701_C05_001",)},
    # DP03_0129P, children under 18 below poverty, in every vintage to 2023; its 2024 label is
    # not verified, so 2024 is not available.
    "pct_children_in_poverty": {2014: ("DP03_0129P",), 2023: ("DP03_0129P",), 2024: ()},
}
# Detailed-table measures read the same cells in 2024 as in 2023 (checked against Census
# Reporter's acs2024_5yr column list): a sample pinned at both ends of the calendar.
UNCHANGED_2024 = {
    "pct_renter_cost_burden": ("B25070_001", "B25070_007", "B25070_008", "B25070_009",
                               "B25070_010", "B25070_011"),
    "pct_owner_cost_burden": ("B25091_001", "B25091_008", "B25091_009", "B25091_010",
                              "B25091_011", "B25091_012", "B25091_019", "B25091_020",
                              "B25091_021", "B25091_022", "B25091_023"),
    "pct_no_health_insurance": ("B27010_001", "B27010_017", "B27010_033", "B27010_050",
                                "B27010_066"),
    "pct_public_transit_commute": ("B08301_001", "B08301_010"),
    "pct_limited_english_households": ("C16002_001", "C16002_004", "C16002_007", "C16002_010",
                                       "C16002_013"),
    "pct_below_poverty": ("C17002_001", "C17002_002", "C17002_003"),
    "pct_minority": ("B03002_001", "B03002_003"),
    "median_household_income": ("B19013_001",),
}


@pytest.fixture(scope="module")
def acs():
    return load_catalog().acs


@pytest.mark.parametrize(("name", "vintage", "expected"),
                         [(n, v, e) for n, table in CHANGES.items() for v, e in table.items()])
def test_each_change_resolves_to_the_exact_variables(acs, name, vintage, expected):
    measure = acs.measure(name)
    assert measure.variables_for(vintage) == expected
    assert (measure.formula(vintage) is None) == (expected == ())


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_every_vintage_between_the_pinned_ones_follows_its_neighbours(acs, name):
    """Vintages between two pinned ones with equal variables read the same variables."""
    pinned = sorted(CHANGES[name].items())
    measure = acs.measure(name)
    for (low, before), (high, after) in zip(pinned, pinned[1:], strict=False):
        if before == after:
            assert all(measure.variables_for(v) == before for v in range(low, high + 1))


@pytest.mark.parametrize(("level", "vintage", "present", "absent"), [
    ("tract", 2014, ["DP02_0071P", "DP02_0113P"], ["B28002_001", "S2701_C05_001", "DP02_0072P"]),
    ("tract", 2016, ["DP02_0071P", "S2701_C05_001"], ["B28002_001", "DP02_0072P"]),
    ("tract", 2017, ["B28002_013", "S2701_C05_001", "DP02_0071P"], ["DP02_0072P"]),
    ("tract", 2019, ["DP02_0072P", "DP02_0114P"], ["DP02_0071P", "DP02_0113P", "DP02_0115P"]),
    ("tract", 2021, ["DP02_0072P", "DP02_0115P", "DP03_0129P"], ["DP02_0114P"]),
    ("block_group", 2021, ["B19013_001", "B25070_011"], ["DP02_0072P", "S2701_C05_001"]),
    ("tract", 2023, ["DP02_0072P", "DP03_0129P", "DP02_0115P"], ["DP02_0071P"]),
    ("tract", 2024, ["DP02_0115P", "S2701_C05_001", "B28002_013", "B27010_066", "B25091_023"],
     ["DP02_0072P", "DP03_0129P", "DP02_0071P"]),
    ("block_group", 2024, ["B19013_001", "B25070_011", "C17002_002"],
     ["DP02_0115P", "S2701_C05_001"]),
])
def test_requested_variables_follow_the_vintage(acs, level, vintage, present, absent):
    requested = set(acs.variables_for(level, vintage))
    assert set(present) <= requested
    assert not set(absent) & requested


def test_only_the_encoded_measures_change_across_vintages(acs):
    changing = {m.name for m in acs.measures if len({m.variables_for(v) for v in VINTAGES}) > 1}
    assert changing == set(CHANGES)


def test_every_calendar_vintage_resolves_every_measure(acs):
    calendar = {r.vintage for r in load_catalog().calendar["acs5"]}
    assert set(VINTAGES) <= calendar
    for m in acs.measures:
        for v in VINTAGES:
            formula = m.formula(v)
            assert formula is None or formula.kind == m.kind, (m.name, v)


def test_rules_carry_their_evidence(acs):
    rules = [r for m in acs.measures for r in m.by_vintage]
    assert len(rules) == 7
    assert all(len(r.evidence) > 100 for r in rules)


@pytest.mark.parametrize("name", sorted(UNCHANGED_2024))
def test_detailed_tables_read_the_same_cells_in_2024(acs, name):
    measure = acs.measure(name)
    assert measure.variables_for(2023) == measure.variables_for(2024) == UNCHANGED_2024[name]


@pytest.mark.parametrize("name", ["pct_disability", "pct_children_in_poverty"])
def test_unverified_2024_profile_codes_are_not_available(acs, name):
    (rule,) = [r for r in acs.measure(name).by_vintage if r.covers(2024)]
    assert (rule.first, rule.last, rule.available) == (2024, None, False)
    assert "2024" in rule.evidence and "variables.json" in rule.evidence


def test_the_2024_release():
    """2020-2024 went public on 2026-01-29 (delayed from 2025-12-11); earlier instants see 2023."""
    releases = load_catalog().calendar["acs5"]
    release = load_catalog().release("acs5", 2024)
    assert (release.period, release.release_date, release.boundary_vintage) == (
        "2020-2024", dt.date(2026, 1, 29), 2020)
    assert "tp25-21" in release.note and "2025-12-11" in release.note
    at = dt.datetime(2026, 1, 29, tzinfo=dt.UTC)
    assert release_in_force(releases, at).vintage == 2024
    assert release_in_force(releases, at - dt.timedelta(microseconds=1)).vintage == 2023
    assert max(r.vintage for r in releases) == 2024


def _measure(**changes) -> Measure:
    base = load_catalog().acs.measure("pct_disability").model_dump()
    return Measure.model_validate({**base, **changes})


@pytest.mark.parametrize(("rules", "message"), [
    ([{"last": 2018, "percent": "DP02_0071P", "evidence": "x" * 30},
      {"first": 2018, "percent": "DP02_0072P", "evidence": "x" * 30}], "overlap"),
    ([{"last": 2018, "numerator": ["B18101_004"], "denominator": ["B18101_001"],
       "evidence": "x" * 30}], "published columns must mean the same"),
    ([{"last": 2016, "available": False, "percent": "DP02_0071P", "evidence": "x" * 30}],
     "lists no variables"),
    ([{"last": 2016, "evidence": "x" * 30}], "needs a numerator or a percent"),
    ([{"first": 2019, "last": 2018, "percent": "DP02_0071P", "evidence": "x" * 30}], "after last"),
    ([{"last": 2018, "percent": "DP02_0071P", "evidence": "short"}], "at least 20"),
])
def test_bad_vintage_rules_are_refused(rules, message):
    with pytest.raises(ValueError, match=message):
        _measure(by_vintage=rules)


def test_a_rule_bound_outside_the_calendar_is_refused():
    cat = load_catalog()
    bad = _measure(by_vintage=[{"last": 2108, "percent": "DP02_0071P", "evidence": "x" * 30}])
    source = cat.acs.model_copy(update={"measures": (bad,)})
    with pytest.raises(CatalogError, match="2108 is not a vintage"):
        check_vintage_rules(source, cat.calendar["acs5"])


def test_rule_span_and_coverage():
    rule = VintageRule(first=2019, last=2019, percent="DP02_0114P", evidence="x" * 30)
    assert [v for v in VINTAGES if rule.covers(v)] == [2019]
    assert rule.span == "2019..2019"
    assert VintageRule(last=2016, available=False, evidence="x" * 30).covers(2014)
