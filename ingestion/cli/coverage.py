"""``sdoh coverage``: an HTML report of who lacks SDOH features, how often and why."""

from __future__ import annotations

from pathlib import Path

import click

from ingestion.cli._common import existing_workspace_option


@click.command("coverage")
@click.option("--frame", "frame_path", type=click.Path(exists=True, dir_okay=False),
              help="Training frame (parquet); default <workspace>/outputs/training_frame.parquet.")
@click.option("--patients", "patients_path", type=click.Path(exists=True, dir_okay=False),
              required=True, help="Patients CSV: patient_id, birth_date and the attributes to split by.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="HTML file to write.")
@click.option("--feature", "features", multiple=True, metavar="COLUMN",
              help="Feature to detail by subgroup (repeatable); default the worst-covered one per view.")
@click.option("--by", "by", multiple=True, metavar="ATTRIBUTE",
              help="Patient attribute to split by (repeatable); default race_ethnicity, "
              "preferred_language, payer, home_area, age_band and sex.")
@click.option("--unit", type=click.Choice(["event", "patient"]), default="event", show_default=True,
              help="Count events, or each patient once at their latest event.")
@click.option("--rejects", "rejects_path", type=click.Path(exists=True, dir_okay=False),
              help="Rejected rows of the linking run, so the linkage funnel counts every input "
                   "row; default the rejects of the run whose timeline is published.")
@existing_workspace_option
def coverage(frame_path, patients_path, out, features, by, unit, rejects_path, workspace) -> None:
    """Write an HTML coverage report: linkage funnel, coverage by subgroup, odds ratios, plots.

    The linkage funnel comes from the workspace's published patient geography, when there is
    one, with the rejected rows of the linking run that published it (or --rejects). Figures
    are embedded, so the report is one file.

    \b
    Example:
      sdoh coverage --workspace ws --frame ws/outputs/training_frame.parquet \\
                    --patients patients.csv --out coverage.html
    """
    import pandas as pd

    from equity.coverage_report import coverage_report
    from ingestion.core.datasets import geography_timeline_spec
    from ingestion.gate.publish import read_published
    from ingestion.gate.rejects import read_published_rejects

    frame = pd.read_parquet(frame_path or workspace.outputs / "training_frame.parquet")
    patients = pd.read_csv(patients_path, dtype={"patient_id": str})
    spec = geography_timeline_spec()
    timeline = read_published(spec, workspace) if workspace.is_published(spec.name) else None
    if rejects_path:
        rejects = pd.read_csv(rejects_path, dtype=str, keep_default_na=False)
    else:
        rejects = read_published_rejects(workspace) if timeline is not None else None
    page = coverage_report(frame, patients, timeline=timeline, rejects=rejects,
                           detail=list(features) or None, by=list(by) or None, unit=unit)
    Path(out).write_text(page, encoding="utf-8")
    funnel = "with" if timeline is not None else "without (no published patient geography)"
    click.echo(f"wrote {out} ({len(page) / 1e6:.1f} MB), {funnel} the linkage funnel")
