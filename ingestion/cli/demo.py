"""``sdoh demo``: the whole pipeline on the synthetic demo region, offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ingestion.cli._common import run_settings, workspace_option

if TYPE_CHECKING:
    from ingestion.jobs.pipeline import DemoSummary


def _print_summary(summary: DemoSummary) -> None:
    import pandas as pd

    from sdoh_sources import METADATA_KEYS

    click.secho("\nDemo summary (synthetic data)", bold=True)
    click.echo("Rows ingested per source:")
    for name, rows in summary.rows_ingested.items():
        click.echo(f"  {name:<28} {rows:>7,}")
    click.echo("Validation:")
    for line in summary.validation.values():
        click.echo(f"  {line}")
    click.echo("Patients imported from the FHIR export (source rows read / accepted / rejected):")
    for table, counts in summary.patients.items():
        click.echo(f"  {table:<14} {counts['read']:>7,} {counts['accepted']:>7,} "
                   f"{counts['rejected']:>7,}")
    for reason, rows in summary.patient_rejects.items():
        click.echo(f"  rejected, {reason}: {rows:,}")
    click.echo("Patients linked and missing, by reason:")
    click.echo("  " + summary.funnel.to_string(index=False).replace("\n", "\n  "))
    rows, cols = summary.training_frame_shape
    click.echo(f"Training frame: {rows:,} rows x {cols} columns -> {summary.training_frame_path}")
    record = summary.online_lookup.iloc[0]
    click.echo(f"Online lookup for patient {record['patient_id']}: tract {record['acs_tract__geoid']}, "
               f"ACS vintage {record['acs_tract__vintage']}")
    for name in [k for k in record.index if k.startswith("acs_tract__") and k.endswith("_missing")]:
        measure = name.removesuffix("_missing")
        value = record[measure]
        shown = f"{value:,.1f}" if pd.notna(value) else f"missing ({record[name]})"
        click.echo(f"  {measure.removeprefix('acs_tract__'):<32} {shown:>14}  "
                   f"{record.get(measure + '_reliability') or ''}")
    for field, tags in summary.online_tags.items():
        click.echo(f"Tags of acs_tract:{field}:")
        for key in METADATA_KEYS:
            click.echo(f"  {key:<18} {tags[key]}")
    if summary.data_docs:
        click.echo(f"Validation Data Docs: {summary.data_docs}")


@click.command("demo")
@click.option("--patients", "n_patients", type=int, default=2000, show_default=True,
              help="Synthetic patients to generate.")
@click.option("--seed", type=int, default=20221208, show_default=True, help="Generator seed.")
@workspace_option
def demo(n_patients, seed, workspace) -> None:
    """Run every stage offline on a generated (synthetic) demo region.

    Generates one county in the Census API, TIGER/Line and Neighborhood Atlas formats, pulls
    its ACS through the real client from a local replay server, validates and publishes,
    imports the patients from its FHIR export (publishing their screened social needs),
    links their address histories, registers Feast, materializes, writes a training frame
    and answers an online lookup.

    \b
    Example:
      sdoh demo                       # into ./sdoh_workspace, every command's default
      sdoh demo --workspace elsewhere
    """
    from ingestion.jobs.pipeline import run_demo

    _print_summary(run_demo(workspace, seed=seed, n_patients=n_patients, settings=run_settings()))
