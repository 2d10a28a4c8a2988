import pandas as pd
import pytest
from click.testing import CliRunner

from equity.datasheets import Datasheet, Section, Table, to_html, to_markdown
from ingestion.cli import sdoh

SHEET = Datasheet("acs_x", "feature view", (
    Section("Overview", 2, ("Rates <per 100> & more.",)),
    Section("Proxies", 3, table=Table(("measure", "proxy_for"), (("pct_a|b", "race,ethnicity"),))),
))


def test_markdown_has_headings_paragraphs_and_escaped_tables():
    text = to_markdown(SHEET)
    assert text.startswith("# Datasheet: acs_x (feature view)\n")
    assert "\n## Overview\n\nRates <per 100> & more.\n" in text
    assert "\n### Proxies\n\n| measure | proxy_for |\n|---|---|\n| pct_a\\|b | race,ethnicity |\n" in text


def test_html_escapes_every_text():
    page = to_html(SHEET)
    assert "<p>Rates &lt;per 100&gt; &amp; more.</p>" in page
    assert "<h3>Proxies</h3>" in page
    assert "<td>pct_a|b</td><td>race,ethnicity</td>" in page
    assert page.startswith("<!DOCTYPE html>")


# --- on the demo workspace ------------------------------------------------------------------


def percent(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})"


@pytest.fixture(scope="module")
def sheets(demo_run, tmp_path_factory):
    """Datasheets of acs_tract and both services, in both formats, written by the command."""
    workspace, _ = demo_run
    out = tmp_path_factory.mktemp("datasheets")
    result = CliRunner().invoke(sdoh, ["datasheet", "acs_tract", "patient_geography", "model_inputs_v1",
                                       "equity_audit_v1", "--out", str(out),
                                       "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    return workspace, out


@pytest.fixture(scope="module")
def tract_rows(sheets):
    return pd.read_parquet(sheets[0].published_dir("acs_tract"))


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["pct_minority", "pct_public_assistance_households", "gini_index"])
def test_reliability_distribution_from_the_published_rows(sheets, tract_rows, measure):
    _, out = sheets
    present = tract_rows[measure].notna().sum()
    counts = tract_rows[f"{measure}_reliability"].value_counts()
    cells = [percent(counts.get(c, 0), present) for c in ("high", "medium", "low", "unknown")]
    row = f"| {measure} | {measure}_moe | " + " | ".join(cells) + " |"
    assert row in (out / "acs_tract.md").read_text()
    html_row = f"<td>{measure}</td><td>{measure}_moe</td>" + "".join(f"<td>{c}</td>" for c in cells)
    assert html_row in (out / "acs_tract.html").read_text()


@pytest.mark.slow
def test_coverage_and_missing_reasons_from_the_published_rows(sheets, tract_rows):
    _, out = sheets
    text = (out / "acs_tract.md").read_text()
    checked = 0
    for measure in ("pct_minority", "gini_index", "pct_group_quarters"):
        reasons = tract_rows[f"{measure}_missing"].value_counts()
        shown = "; ".join(f"{r}: {n:,}" for r, n in reasons.head(3).items()) or "none"
        present = tract_rows[measure].notna().sum()
        assert (f"| {measure} | {len(tract_rows):,} | {percent(present, len(tract_rows))} | {shown} |"
                in text)
        checked += len(reasons)
    assert checked > 0  # some measure has a missing reason to show


@pytest.mark.slow
def test_vintages_release_dates_and_boundaries(sheets, tract_rows):
    _, out = sheets
    text = (out / "acs_tract.md").read_text()
    for vintage, rows in tract_rows.groupby("vintage"):
        release = rows["release_ts"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d").iloc[0]
        line = (f"| {vintage} | {release} | {rows['boundary_year'].iloc[0]} | {len(rows):,} | "
                f"{int(rows['synthetic'].sum()):,} |")
        assert line in text
    assert "Boundary vintages: 2010,2020." in text


@pytest.mark.slow
def test_proxies_biases_uses_and_licence_from_the_catalog(sheets):
    from sdoh_sources import load_catalog

    _, out = sheets
    text = (out / "acs_tract.md").read_text()
    acs = load_catalog().acs
    minority = acs.measure("pct_minority")
    proxies = text.split("## Proxies for protected attributes")[1].split("## Known biases")[0]
    assert f"| pct_minority | race,ethnicity | {minority.fairness_role} |" in proxies
    assert "| pct_below_poverty |" not in proxies
    for value in (minority.known_biases, minority.intended_use, minority.prohibited_use, acs.license):
        assert " ".join(value.split()) in text.replace("\n", " ")


@pytest.mark.slow
def test_patient_geography_reasons_explain_only_geoids(sheets):
    workspace, out = sheets
    rows = pd.read_parquet(workspace.published_dir("patient_geography"))
    text = (out / "patient_geography.md").read_text()
    reasons = rows.loc[rows["tract_geoid_2020"].isna(), "link_missing"].value_counts().head(3)
    assert "; ".join(f"{r}: {n:,}" for r, n in reasons.items()) in text
    assert f"| link_method | {len(rows):,} | {percent(len(rows), len(rows))} | none |" in text


@pytest.mark.slow
def test_service_datasheets_cover_the_features_they_serve(sheets):
    _, out = sheets
    audit = (out / "equity_audit_v1.md").read_text()
    inputs = (out / "model_inputs_v1.md").read_text()
    assert "## Feature view acs_tract" in audit and "## Feature view acs_tract" in inputs
    assert "| pct_minority | pct_minority_moe |" in audit
    # pct_minority is a stratifier, not a model input: model_inputs_v1 does not serve it.
    assert "pct_minority" not in inputs


@pytest.mark.slow
def test_format_choice_and_unknown_names(demo_run, tmp_path):
    workspace, _ = demo_run
    result = CliRunner().invoke(sdoh, ["datasheet", "adi_block_group", "--out", str(tmp_path),
                                       "--format", "html", "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adi_block_group.html"]
    result = CliRunner().invoke(sdoh, ["datasheet", "acs_moon", "--out", str(tmp_path),
                                       "--workspace", str(workspace.root)])
    assert result.exit_code == 1
    assert "unknown feature views or services ['acs_moon']; choose from ['acs_block_group'" in result.output
