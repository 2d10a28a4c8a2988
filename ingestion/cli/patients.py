"""``sdoh patients``: bring patients in from OMOP CDM, FHIR R4 or Synthea."""

from __future__ import annotations

import click

from ingestion.cli._common import workspace_option

FORMATS = ("omop", "fhir", "synthea")


@click.group()
def patients() -> None:
    """Patients from where health systems keep them: address histories, events, screenings."""


@patients.command("import")
@click.option("--from", "source_format", type=click.Choice(FORMATS), required=True,
              help="The source's format: an OMOP CDM 5.4 folder of CSVs, DuckDB file or "
                   "postgresql:// URL; FHIR R4 Bulk NDJSON or Bundle JSON; a Synthea CSV export.")
@click.argument("path")
@click.option("--pseudonymize", is_flag=True,
              help="Publish screened needs keyed by HMAC-SHA256 of the ids with the secret in "
                   "SDOH_PATIENT_KEY_SECRET (link with --pseudonymize too).")
@workspace_option
def import_(source_format, path, pseudonymize, workspace) -> None:
    """Read patients; write their address history, events and demographics; publish screenings.

    Files go to <workspace>/raw/patients/ (owner-only: they hold patient data and never leave
    the machine): address_history.csv (the input of `sdoh link`), events.csv (the input of
    `sdoh training-frame`), demographics.csv (for `sdoh coverage --patients`) and rejects.csv
    (every source row left out, with its reason). Screened social needs are validated and
    published as the dataset screened_needs. Names, SSNs and free text are never read.

    \b
    Example:
      sdoh patients import --from fhir export/ --pseudonymize
      sdoh link sdoh_workspace/raw/patients/address_history.csv --boundaries 2020 tl_2020_25_bg.zip
    """
    from ingestion.jobs.patients import import_patients

    done = import_patients(source_format, path, workspace=workspace, pseudonymize=pseudonymize)
    for table, count in done.counts.items():
        click.echo(f"{table}: {count['read']} read, {count['accepted']} accepted, "
                   f"{count['rejected']} rejected")
    for reason, count in done.rejects_by_reason.items():
        click.echo(f"  rejected {count}: {reason}")
    click.echo(f"wrote {', '.join(str(p) for p in done.files.values())}")
    if done.screening is None:
        click.echo("no screening answer or SDOH condition in the source: screened_needs unchanged")
    else:
        click.echo(f"published screened_needs: {done.screening.n_rows} rows")
    unmapped = done.unmapped
    if not unmapped.empty:
        click.echo(f"not screening any domain of the catalog: {int(unmapped['rows'].sum())} rows "
                   f"({', '.join(sorted(set(unmapped['reason'])))})")
