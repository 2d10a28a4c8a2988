"""Variable codes across ACS 5-year vintages 2014-2023: every change the catalog encodes.

Each test pins the exact variables on both sides of one change; the evidence for each code is
in the rule's ``evidence`` in sdoh_sources/catalog/acs.yaml.
"""

import pytest

from sdoh_sources import CatalogError, load_catalog
from sdoh_sources._models import Measure, VintageRule
from sdoh_sources.catalog import check_vintage_rules

VINTAGES = tuple(range(2014, 2024))
# measure -> {vintage: variables read}; () means not available in that vintage.
CHANGES = {
    # B28002 (internet subscriptions) is first published in the 2013-2017 5-year.
    "pct_no_internet_subscription": {
        2014: (), 2016: (),
        2017: ("B28002_001", "B28002_012", "B28002_013"),
        2023: ("B28002_001", "B28002_012", "B28002_013")},
    # DP02 "With a disability" moved from DP02_0071 to DP02_0072 in 2019.
    "pct_disability": {2014: ("DP02_0071P",), 2018: ("DP02_0071P",), 2019: ("DP02_0072P",),
                       2023: ("DP02_0072P",)},
    # DP02 "Speak English less than very well" moved twice: 0113 -> 0114 (2019) -> 0115 (2020).
    "pct_limited_english_speakers": {2014: ("DP02_0113P",), 2018: ("DP02_0113P",),
                                     2019: ("DP02_0114P",), 2020: ("DP02_0115P",),
                                     2023: ("DP02_0115P",)},
    # S2701_C05_001 is the percent uninsured only from 2015 (the percent insured before).
    "pct_uninsured_published": {2014: (), 2015: ("S2701_C05_001",), 2023: ("S2701_C05_001",)},
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
    assert len(rules) == 5
    assert all(len(r.evidence) > 100 for r in rules)


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
