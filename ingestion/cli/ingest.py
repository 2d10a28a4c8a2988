"""``sdoh ingest``: pull or read a public source, validate it and publish it."""

from __future__ import annotations

import click

from ingestion.cli._common import run_settings, workspace_option

LEVELS = ("block_group", "tract", "county", "zcta", "state")
DEFAULT_LEVELS = ("block_group", "tract", "county")
REFERENCES = ("state", "nation")


@click.group()
def ingest() -> None:
    """Ingest a source: pull, build measures, validate, publish (or quarantine)."""


def _parse_states(_ctx, _param, values: tuple[str, ...]) -> list[str] | None:
    """``--state`` values as FIPS codes, or None for ``all``; a bad one is a usage error."""
    from ingestion.core.geography import normalize_states

    if any(v.strip().lower() == "all" for v in values):
        if len(values) > 1:
            raise click.BadParameter(f"`all` cannot be combined with other states, got "
                                     f"{list(values)}; give `all` alone or only named states")
        return None
    try:
        return list(normalize_states(list(values)))
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, or `all` for every state, DC and PR") from None


def _parse_counties(_ctx, _param, values: tuple[str, ...]) -> list[str] | None:
    """``--county`` values as 3-digit FIPS codes, or None when none is given."""
    from ingestion.core.geography import normalize_counties

    if not values:
        return None
    try:
        return list(normalize_counties(list(values)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def census_options(func):
    """The Census Data API options every pulling command shares: states, URL, cache, workers."""
    options = [
        click.option("--state", "states", required=True, multiple=True, callback=_parse_states,
                     help="State as FIPS, postal code or name. Repeatable; `all` for every state, "
                          "DC and PR."),
        click.option("--base-url", default="https://api.census.gov/data", show_default=True,
                     help="Census Data API base URL (point it at a mirror or replay server)."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     default=None, help="Keep API responses here: a rerun makes no requests, an "
                                        "interrupted run resumes. [env SDOH_CACHE_DIR]"),
        click.option("--max-workers", type=click.IntRange(1, 16), default=4, show_default=True,
                     help="Requests in flight at once."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _client(base_url: str, cache_dir: str | None, max_workers: int):
    """The Census client: ``--cache-dir`` wins over ``SDOH_CACHE_DIR``; the key is the settings'."""
    from ingestion.core.settings import secret
    from ingestion.sources.census_api import CensusClient

    settings = run_settings(cache_dir=cache_dir)
    return CensusClient(base_url=base_url, cache_dir=settings.cache_dir, max_workers=max_workers,
                        api_key=secret(settings.census_api_key))


def _report(result) -> None:
    click.echo(f"published {result.dataset}: {result.n_rows} rows ({result.report.summary()})")


@ingest.command("acs")
@click.option("--vintage", type=int, required=True, multiple=True,
              help="ACS 5-year vintage (final year), e.g. 2021. Repeatable. No default on purpose.")
@click.option("--county", "counties", multiple=True, callback=_parse_counties,
              help="Only this county (3-digit FIPS) of the one --state given. Repeatable.")
@click.option("--level", type=click.Choice(LEVELS), multiple=True, default=DEFAULT_LEVELS,
              show_default=True, help="Geography levels. Repeatable. ZCTAs are national: `--state all`.")
@click.option("--reliability-rule", default=None,
              help="Reliability rule of the catalog (sdoh_sources/catalog/missing_reasons.yaml), "
                   "e.g. cv_15_30; the catalog default (cv_12_40) otherwise. Stored with the rows "
                   "and shown in the fields' tags.")
@census_options
@workspace_option
def acs(vintage, counties, level, reliability_rule, states, base_url, cache_dir, max_workers,
        workspace) -> None:
    """Pull the ACS measure catalog through the Census Data API and publish it.

    The API key is read from CENSUS_API_KEY and never logged.

    \b
    Example:
      sdoh ingest acs --vintage 2021 --state DE --level tract --workspace ws
      sdoh ingest acs --vintage 2022 --state PA --county 101 --county 045 --level block_group
    """
    from ingestion.derive.acs import check_vintage
    from ingestion.jobs.ingest import ingest_acs

    for v in vintage:  # every vintage before the first request
        check_vintage(v)
    client = _client(base_url, cache_dir, max_workers)
    for v in vintage:
        for lv in level:
            _report(ingest_acs(lv, v, states, county=counties, workspace=workspace,
                               client=client, reliability_rule=reliability_rule))


@ingest.command("svi")
@click.option("--release", type=int, required=True, multiple=True,
              help="SVI release (2020, 2022), computed from its ACS 5-year vintage. Repeatable.")
@click.option("--level", type=click.Choice(("tract", "county")), multiple=True,
              default=("tract", "county"), show_default=True, help="Geography levels. Repeatable.")
@click.option("--reference", type=click.Choice(REFERENCES), required=True,
              help="Rank within each state (CDC's state files) or the nation (CDC's US files; "
                   "needs `--state all`).")
@census_options
@workspace_option
def svi(release, level, reference, states, base_url, cache_dir, max_workers, workspace) -> None:
    """Compute the CDC/ATSDR SVI from ACS with CDC's method and publish its ranks.

    \b
    Example:
      sdoh ingest svi --release 2020 --state DE --reference state --level tract
      sdoh ingest svi --release 2022 --state all --reference nation
    """
    from ingestion.jobs.ingest import ingest_svi

    client = _client(base_url, cache_dir, max_workers)
    for r in release:
        for lv in level:
            _report(ingest_svi(lv, r, states, reference=reference, workspace=workspace,
                               client=client))


@ingest.command("svi-file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--release", type=int, required=True, help="SVI release of the file, e.g. 2020.")
@click.option("--reference", type=click.Choice(REFERENCES), required=True,
              help="`state` for CDC's state files, `nation` for its US files.")
@click.option("--available-from", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Day the file became available to you (its rows' event time).")
@workspace_option
def svi_file(path, release, reference, available_from, workspace) -> None:
    """Read an SVI CSV as CDC publishes it (tract or county) and publish its ranks.

    \b
    Example:
      sdoh ingest svi-file SVI_2020_US.csv --release 2020 --reference nation \\
        --available-from 2022-12-22
    """
    from ingestion.jobs.ingest import ingest_svi_file

    _report(ingest_svi_file(path, release=release, reference=reference,
                            available_from=available_from.date(), workspace=workspace))


@ingest.command("adi-acs")
@click.option("--vintage", type=int, required=True, multiple=True,
              help="ACS 5-year vintage on 2020 block groups, e.g. 2022. Repeatable.")
@click.option("--reference", type=click.Choice(REFERENCES), required=True,
              help="Scale and rank within each state, or the nation (needs `--state all`).")
@census_options
@workspace_option
def adi_acs(vintage, reference, states, base_url, cache_dir, max_workers, workspace) -> None:
    """Compute the Area Deprivation Index from ACS block groups (Singh 2003) and publish it.

    Both the unstandardized index (as the Neighborhood Atlas) and the standardized variant
    (Petterson 2023) are published. Not the Atlas file: see `sdoh ingest source adi` for that.

    \b
    Example:
      sdoh ingest adi-acs --vintage 2022 --state DE --reference state
    """
    from ingestion.jobs.ingest import ingest_adi_acs

    client = _client(base_url, cache_dir, max_workers)
    for v in vintage:
        _report(ingest_adi_acs(v, states, reference=reference, workspace=workspace,
                               client=client))


@ingest.command("source")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--release", default=None,
              help="The release, e.g. 2022. Left out: the one PATH's name tells, where the spec "
                   "names its releases' files (Neighborhood Atlas ADI); never a default.")
@click.option("--level", type=click.Choice(LEVELS), default=None,
              help="Geography level, when the source has the release at several (PLACES, RUCA).")
@click.option("--layout", type=click.Choice(["wide", "long"]), default=None,
              help="long for a long table (a line per area and measure, e.g. data.cdc.gov's "
                   "PLACES) where the release also ships a wide file, the default.")
@click.option("--available-from", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Day the file became available to you (its rows' event time). Required when "
                   "the spec has no documented release day; never earlier than a documented one.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Keep downloads here, verified; an interrupted one resumes. "
                   "[env SDOH_CACHE_DIR, else <workspace>/cache]")
@click.option("--mirror", default=None,
              help="A server with the publisher's paths (https, or http on loopback).")
@workspace_option
def source(name, path, release, level, layout, available_from, cache_dir, mirror, workspace) -> None:
    """Read a publisher's file as its source spec declares it, validate it and publish it.

    NAME is a spec of sdoh_sources/catalog/sources (eji, food_access, chr, ...); PATH is the
    file as the publisher ships it (zip, CSV or XLSX). Without PATH the file is downloaded
    from the release's URL in the spec.

    \b
    Examples:
      sdoh ingest source eji EJI_2022_Massachusetts_CSV.zip --release 2022
      sdoh ingest source chr --release 2010
      sdoh ingest source adi US_2021_ADI_Census_Block_Group_v4_0_1.csv --available-from 2023-06-01
    """
    from ingestion.jobs.ingest import ingest_source

    done = ingest_source(name, release, path, workspace=workspace, level=level, layout=layout,
                         available_from=available_from.date() if available_from else None,
                         cache_dir=cache_dir, mirror=mirror)
    report = done.report
    click.echo(f"read {done.file}: {report.rows_read} rows ({report.blank_rows} blank lines skipped)")
    for reason, count in report.set_aside.items():
        click.echo(f"  set aside {count}: {reason}")
    _report(done.published)
