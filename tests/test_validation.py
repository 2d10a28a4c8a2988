"""The validation gate: suites generated from dataset specs catch every kind of bad data."""

from __future__ import annotations

import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import great_expectations as gx
import numpy as np
import pandas as pd
import pytest
from spec_frames import valid_frame

from ingestion.core.datasets import (
    JAM_VALUES,
    MEASURE_SUFFIXES,
    ColumnRule,
    DatasetSpec,
    acs_spec,
    adi_spec,
    published_specs,
)
from ingestion.core.workspace import Workspace
from ingestion.gate.validation import (
    ValidationReport,
    build_suite,
    offline_data_docs,
    suite_name,
    validate,
    workspace_context,
)

N_ROWS = 40


@pytest.fixture(scope="module")
def context():
    """One ephemeral GX context for the module: checkpoints are registered once per spec."""
    return gx.get_context(mode="ephemeral")


@pytest.fixture(scope="module")
def tract() -> DatasetSpec:
    """The ACS tract spec cut to the measures these tests break (its real column rules).

    Every expectation costs GX ~10 ms per run; the full spec's 84 would make the many
    failure cases below slow without testing anything more.
    """
    full = acs_spec("tract")
    measures = ("pct_below_poverty", "median_household_income", "pct_unemployed",
                "pct_no_vehicle", "pct_crowded", "pct_minority")
    keep = {f"{m}{suffix}" for m in measures for suffix in MEASURE_SUFFIXES}
    columns = tuple(c for c in full.columns if c.name in keep or c.name not in
                    {f"{m}{suffix}" for m in full.measures for suffix in MEASURE_SUFFIXES})
    return replace(full, columns=columns, measures=measures)


def _types(suite) -> list[tuple[str, str | None]]:
    return [(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations]


def test_suite_is_generated_from_the_spec():
    tract = acs_spec("tract")
    suite = build_suite(tract)
    kinds = _types(suite)
    assert suite.name == suite_name("acs_tract") == "acs_tract_suite"
    assert kinds[0] == ("expect_table_columns_to_match_set", None)
    checks = {f"reason_consistent__{m}" for m in tract.measures}  # derived before validation
    assert set(suite.expectations[0].column_set) == set(tract.column_names) | checks
    unique = next(e for e in suite.expectations
                  if e.expectation_type == "expect_compound_columns_to_be_unique")
    assert unique.column_list == ["tract_geoid", "vintage"]
    assert ("expect_column_values_to_match_regex", "tract_geoid") in kinds
    assert ("expect_column_values_to_not_be_null", "release_ts") in kinds
    assert ("expect_column_values_to_be_in_set", "pct_crowded_missing") in kinds
    assert ("expect_column_values_to_be_in_set", "pct_crowded_reliability") in kinds
    between = {e.column: (e.min_value, e.max_value) for e in suite.expectations
               if e.expectation_type == "expect_column_values_to_be_between"}
    assert between["pct_crowded"] == (0.0, 100.0)
    assert between["pct_crowded_moe"] == (0, None)
    boundary = next(e for e in suite.expectations if getattr(e, "column", None) == "boundary_year"
                    and e.expectation_type == "expect_column_values_to_be_in_set")
    assert sorted(boundary.value_set) == [2010, 2020]  # typed like the int64 column


def test_jam_values_get_their_own_expectation_only_where_the_range_lets_them_through():
    spec = DatasetSpec(
        name="toy_area",
        key_columns=("toy_geoid", "vintage"),
        columns=(
            ColumnRule("toy_geoid", "string", nullable=False, regex=r"^\d{5}$"),
            ColumnRule("vintage", "int64", nullable=False, minimum=2009, maximum=2100),
            ColumnRule("ranged", "float64", minimum=0),
            ColumnRule("signed_change", "float64"),
        ),
        timestamp_column="vintage",
    )
    jam_checks = {e.column: e.value_set for e in build_suite(spec).expectations
                  if e.expectation_type == "expect_column_values_to_not_be_in_set"}
    assert list(jam_checks) == ["signed_change"]
    assert sorted(jam_checks["signed_change"]) == sorted(float(v) for v in JAM_VALUES)

    df = pd.DataFrame({"toy_geoid": ["01001", "01003"], "vintage": [2020, 2020],
                       "ranged": [1.0, 2.0], "signed_change": [-3.5, -222222222.0]})
    report = validate(df, spec)
    assert not report.success
    (failure,) = report.failures
    assert failure["columns"] == ["signed_change"]
    assert failure["jam_values"] == [-222222222]
    assert failure["example_rows"] == [1]


@pytest.mark.parametrize("spec", published_specs(), ids=lambda s: s.name)
def test_valid_frames_pass(spec, context):
    report = validate(valid_frame(spec, N_ROWS), spec, context=context)
    assert report.success, report.describe_failures()
    assert report.failures == []
    assert report.n_rows == N_ROWS
    assert report.n_expectations == len(build_suite(spec).expectations)
    assert report.summary() == f"{spec.name}: passed {report.n_expectations} expectations " \
                               f"on {N_ROWS} rows"


def _set(column, row, value):
    def mutate(df):
        df.loc[row, column] = value
        return df
    return mutate


def _missing_with_reason(measure, row, reason):
    def mutate(df):
        df.loc[row, [measure, f"{measure}_moe", f"{measure}_cv"]] = np.nan
        df.loc[row, f"{measure}_reliability"] = None
        df.loc[row, f"{measure}_missing"] = reason
        return df
    return mutate


def _duplicate_key(df):
    df.loc[7, ["tract_geoid", "vintage"]] = df.loc[3, ["tract_geoid", "vintage"]].to_numpy()
    return df


# (mutation, failing expectation, column(s), expected example value, example rows)
FAILURES = {
    "geoid_length": (_set("tract_geoid", 5, "0600100"), "expect_column_values_to_match_regex",
                     ["tract_geoid"], "0600100", [5]),
    "duplicate_key": (_duplicate_key, "expect_compound_columns_to_be_unique",
                      ["tract_geoid", "vintage"], None, [3, 7]),
    "percent_over_100": (_set("pct_below_poverty", 9, 104.2),
                         "expect_column_values_to_be_between", ["pct_below_poverty"], 104.2, [9]),
    "negative_moe": (_set("median_household_income_moe", 2, -15.0),
                     "expect_column_values_to_be_between", ["median_household_income_moe"],
                     -15.0, [2]),
    "jam_value": (_set("median_household_income", 11, -666666666.0),
                  "expect_column_values_to_be_between", ["median_household_income"],
                  -666666666.0, [11]),
    "unknown_missing_reason": (_missing_with_reason("pct_no_vehicle", 4, "unknown_reason"),
                               "expect_column_values_to_be_in_set", ["pct_no_vehicle_missing"],
                               "unknown_reason", [4]),
    "bad_reliability": (_set("pct_crowded_reliability", 6, "very_high"),
                        "expect_column_values_to_be_in_set", ["pct_crowded_reliability"],
                        "very_high", [6]),
    "bad_boundary_year": (_set("boundary_year", 1, 2015), "expect_column_values_to_be_in_set",
                          ["boundary_year"], 2015, [1]),
    "null_in_non_null": (_set("release_ts", 8, pd.NaT), "expect_column_values_to_not_be_null",
                         ["release_ts"], None, [8]),
    "missing_column": (lambda df: df.drop(columns=["pct_crowded_cv"]),
                       "expect_table_columns_to_match_set", [], None, []),
    "extra_column": (lambda df: df.assign(NAME="Census Tract 1"),
                     "expect_table_columns_to_match_set", [], None, []),
    "silent_nan": (_set("pct_unemployed", 10, np.nan), "expect_column_values_to_be_in_set",
                   ["pct_unemployed", "pct_unemployed_missing"], None, [10]),
    "reason_on_present_value": (_set("pct_no_vehicle_missing", 12, "insufficient_sample"),
                                "expect_column_values_to_be_in_set",
                                ["pct_no_vehicle", "pct_no_vehicle_missing"], None, [12]),
    "int_column_as_float": (lambda df: df.assign(vintage=df["vintage"].astype("float64")),
                            "expect_column_values_to_be_of_type", ["vintage"], None, []),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_kind_is_caught(case, tract, context):
    mutate, expectation, columns, example, rows = FAILURES[case]
    df = mutate(valid_frame(tract, N_ROWS))
    report = validate(df, tract, context=context)
    assert not report.success
    assert [f["expectation"] for f in report.failures] == [expectation], report.failures
    (failure,) = report.failures
    assert failure["columns"] == columns
    assert failure["example_rows"] == rows
    if example is not None:
        assert failure["unexpected_values"][0] == example
        assert repr(example) in failure["message"] or str(example) in failure["message"]
    for column in columns:
        assert column in failure["message"]
    assert report.summary().startswith("acs_tract: FAILED 1 check(s) on 40 rows")
    json.dumps(report.to_dict())  # the report is JSON-ready as is


def test_missing_and_extra_columns_are_named_once(tract, context):
    df = valid_frame(tract, N_ROWS).drop(columns=["pct_crowded", "tract_geoid"]).assign(x=1)
    report = validate(df, tract, context=context)
    (failure,) = report.failures  # checks on the absent columns are not repeated
    assert failure["missing_columns"] == ["pct_crowded", "tract_geoid"]
    assert failure["unexpected_columns"] == ["x"]
    assert "missing ['pct_crowded', 'tract_geoid']" in failure["message"]
    assert "pct_crowded" in report.summary()


def test_jam_value_is_named_as_a_leak(tract, context):
    df = valid_frame(tract, N_ROWS)
    df.loc[[3, 17], "pct_unemployed_moe"] = -999999999.0
    (failure,) = validate(df, tract, context=context).failures
    assert failure["unexpected_count"] == 2
    assert failure["jam_values"] == [-999999999]
    assert "Census jam value(s) [-999999999] leaked" in failure["message"]
    assert "rows [3, 17]" in failure["message"]


def test_nulls_in_nullable_measures_pass(tract, context):
    df = valid_frame(tract, N_ROWS)
    df.loc[:4, ["pct_crowded", "pct_crowded_moe", "pct_crowded_cv"]] = np.nan
    df.loc[:4, "pct_crowded_missing"] = "insufficient_sample"
    assert validate(df, tract, context=context).success


def test_several_failures_are_ordered_table_key_then_columns(tract, context):
    df = valid_frame(tract, N_ROWS).assign(extra=1)
    df.loc[2, "pct_minority"] = 101.0
    df.loc[2, "tract_geoid"] = "1"
    df = _duplicate_key(df)
    report = validate(df, tract, context=context)
    assert [f["expectation"] for f in report.failures] == [
        "expect_table_columns_to_match_set",
        "expect_compound_columns_to_be_unique",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_between",
    ]
    assert report.describe_failures(limit=2).endswith("... and 2 more failed expectations")


def test_row_positions_ignore_the_frame_index(context):
    spec = adi_spec()
    df = valid_frame(spec, 10)
    df.index = [f"r{i}" for i in range(10)]
    df.iloc[6, df.columns.get_loc("adi_state_decile")] = 11.0
    (failure,) = validate(df, spec, context=context).failures
    assert failure["example_rows"] == [6]


def test_empty_frame_fails(context):
    spec = adi_spec()
    report = validate(valid_frame(spec, 0), spec, context=context)
    assert not report.success
    assert report.failures[0]["expectation"] == "expect_table_row_count_to_be_between"


def test_default_context_is_ephemeral_and_rejects_non_frames():
    spec = adi_spec()
    assert validate(valid_frame(spec, 5), spec).success
    with pytest.raises(TypeError, match="pandas DataFrame, got dict"):
        validate({"a": [1]}, spec)  # type: ignore[arg-type]


def test_file_context_updates_data_docs(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ctx = workspace_context(ws)
    spec = adi_spec()
    report = validate(valid_frame(spec, 5), spec, context=ctx, data_docs=True)
    assert report.success
    assert (ws.gx / "great_expectations.yml").exists()
    assert (ws.gx / "expectations" / "adi_block_group_suite.json").exists()
    assert (ws.gx / "checkpoints" / "adi_block_group_checkpoint.json").exists()
    assert (ws.gx / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    (page,) = report.data_docs
    assert page.startswith("file://") and "adi_block_group_suite" in page

    # A second run reuses the registered checkpoint; a failing one still lands in the docs.
    bad = valid_frame(spec, 5)
    bad.loc[0, "adi_national_rank"] = 0.0
    again = validate(bad, spec, context=workspace_context(ws), data_docs=True)
    assert not again.success and again.data_docs and again.data_docs != report.data_docs


class _Page(HTMLParser):
    """The resources a page loads, and the cells of its tables outside any script."""

    def __init__(self):
        super().__init__()
        self.resources, self.rows, self.links = [], [], []
        self._in_script = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_script = tag == "script"
        self._in_cell = self._in_cell or tag in ("td", "th")
        if tag in ("script", "img") and attrs.get("src"):
            self.resources.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.resources.append(attrs["href"])
        if tag == "tr":
            self.rows.append([])
        if tag == "a" and self.rows and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        self._in_script = False if tag == "script" else self._in_script
        self._in_cell = False if tag in ("td", "th") else self._in_cell

    def handle_data(self, data):
        if self.rows and self._in_cell and not self._in_script and data.strip():
            self.rows[-1].append(data.strip())


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def data_docs_site(tmp_path_factory):
    """A file context's Data Docs after a passing and a failing validation: (context, site)."""
    ws = Workspace(tmp_path_factory.mktemp("docs"))
    spec = adi_spec()
    validate(valid_frame(spec, 5), spec, context=workspace_context(ws), data_docs=True)
    bad = valid_frame(spec, 5)
    bad.loc[0, "adi_national_rank"] = 0.0
    ctx = workspace_context(ws)
    validate(bad, spec, context=ctx, data_docs=True)
    return ctx, ws.gx / "uncommitted" / "data_docs" / "local_site"


def test_data_docs_load_every_script_style_and_image_from_local_files(data_docs_site):
    _, site = data_docs_site
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 4  # index, the suite, three results (the failing run's gate and diagnosis)
    for path in pages:
        resources = _page(path).resources
        assert len(resources) >= 4, path  # bootstrap css and js, jquery, font awesome, favicon
        for ref in resources:
            assert "://" not in ref and not ref.startswith("//"), (path, ref)
            local = (path.parent / ref.split("?")[0]).resolve()
            assert local.is_file() and local.is_relative_to(site.resolve()), (path, ref)


def test_data_docs_local_copies_are_the_libraries_gx_asks_for(data_docs_site):
    _, site = data_docs_site
    offline = site / "static" / "offline"
    assert "Bootstrap v4." in (offline / "bootstrap" / "css" / "bootstrap.min.css").read_text()[:200]
    assert "jQuery v3.7" in (offline / "jquery" / "jquery.min.js").read_text()[:200]
    assert (offline / "font-awesome" / "webfonts" / "fa-solid-900.woff2").is_file()


def test_data_docs_index_lists_every_result_in_plain_html(data_docs_site):
    ctx, site = data_docs_site
    index = _page(site / "index.html")
    results = [row for row in index.rows if row and row[-2] in ("passed", "FAILED")]
    stored = ctx.validation_results_store.list_keys()
    assert len(results) == len(stored) == 3
    assert [row[-2] for row in results].count("passed") == 1
    assert {row[0] for row in results} == {"adi_block_group"}
    pages = [link for link in index.links if link.startswith("validations/")]
    assert len(pages) == 3 and all((site / link).is_file() for link in pages)


def test_offline_data_docs_can_run_again_without_changing_the_site(data_docs_site):
    ctx, site = data_docs_site
    before = {p: p.read_text() for p in site.rglob("*.html")}
    assert offline_data_docs(ctx) == [site / "index.html"]
    assert {p: p.read_text() for p in site.rglob("*.html")} == before
    assert before[site / "index.html"].count("sdoh-validation-results") == 1


def test_report_round_trips_to_json():
    report = ValidationReport("acs_tract", success=False, n_rows=2, n_expectations=3,
                              failures=[{"expectation": "e", "columns": ["c"], "message": "m"}])
    assert json.loads(json.dumps(report.to_dict()))["failures"][0]["columns"] == ["c"]
    assert report.summary() == "acs_tract: FAILED 1 check(s) on 2 rows (c); 3 expectations"
    assert report.describe_failures() == "- m"
