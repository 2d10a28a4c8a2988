"""``sdoh ingest``: pull or read a public source, validate it and publish it."""

from __future__ import annotations

import click

from ingestion.cli._common import workspace_option

LEVELS = ("block_group", "tract", "county", "zcta", "state")
DEFAULT_LEVELS = ("block_group", "tract", "county")


@click.group()
def ingest() -> None:
    """Ingest a source: pull, build measures, validate, publish (or quarantine)."""


@ingest.command("acs")
@click.option("--vintage", type=int, required=True, multiple=True,
              help="ACS 5-year vintage (final year), e.g. 2021. Repeatable. No default on purpose.")
@click.option("--state", "states", required=True, multiple=True,
              help="State as FIPS, postal code or name. Repeatable; `all` for every state, DC and PR.")
@click.option("--county", "counties", multiple=True,
              help="Only this county (3-digit FIPS) of the one --state given. Repeatable.")
@click.option("--level", type=click.Choice(LEVELS), multiple=True, default=DEFAULT_LEVELS,
              show_default=True, help="Geography levels. Repeatable. ZCTAs are national: `--state all`.")
@click.option("--base-url", default="https://api.census.gov/data", show_default=True,
              help="Census Data API base URL (point it at a mirror or replay server).")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="SDOH_CACHE_DIR", default=None,
              help="Keep API responses here: a rerun makes no requests, an interrupted run resumes. "
                   "[env SDOH_CACHE_DIR]")
@click.option("--max-workers", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Requests in flight at once.")
@click.option("--reliability-rule", default=None,
              help="Reliability rule of the catalog (sdoh_sources/catalog/missing_reasons.yaml), "
                   "e.g. cv_15_30; the catalog default (cv_12_40) otherwise. Stored with the rows "
                   "and shown in the fields' tags.")
@workspace_option
def acs(vintage, states, counties, level, base_url, cache_dir, max_workers, reliability_rule,
        workspace) -> None:
    """Pull the ACS measure catalog through the Census Data API and publish it.

    The API key is read from CENSUS_API_KEY and never logged.

    \b
    Example:
      sdoh ingest acs --vintage 2021 --state DE --level tract --workspace ws
      sdoh ingest acs --vintage 2022 --state PA --county 101 --county 045 --level block_group
    """
    from ingestion.acs import ingest_acs
    from ingestion.census_api import CensusClient

    client = CensusClient(base_url=base_url, cache_dir=cache_dir, max_workers=max_workers)
    state = None if "all" in states else list(states)
    for v in vintage:
        for lv in level:
            result = ingest_acs(lv, v, state, county=list(counties) or None, workspace=workspace,
                                client=client, reliability_rule=reliability_rule)
            click.echo(f"published {result.dataset}: {result.n_rows} rows ({result.report.summary()})")


@ingest.command("adi")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--available-from", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Day the file became available to you (its rows' event time); the Atlas "
                   "publishes no release calendar, so it is never guessed.")
@click.option("--vintage", type=int, default=None, help="ADI vintage; read from the file name if omitted.")
@workspace_option
def adi(path, available_from, vintage, workspace) -> None:
    """Read a Neighborhood Atlas ADI file and publish it.

    \b
    Example:
      sdoh ingest adi US_2021_ADI_Census_Block_Group_v4_0_1.csv --available-from 2023-06-01
    """
    from ingestion.adi import ingest_adi

    result = ingest_adi(path, available_from=available_from.date(), vintage=vintage, workspace=workspace)
    click.echo(f"published {result.dataset}: {result.n_rows} rows ({result.report.summary()})")
