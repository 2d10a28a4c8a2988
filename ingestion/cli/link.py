"""``sdoh link``: link an address-history file to census geographies and publish the timeline."""

from __future__ import annotations

import click

from ingestion.cli._common import workspace_option

YEAR_FILE = click.Tuple([click.Choice(["2010", "2020"]), click.Path(exists=True, dir_okay=False)])
PHI_WARNING = ("WARNING: patient addresses will leave this machine: the street addresses "
               "without coordinates are sent to the Census Geocoder at {url} "
               "(--send-addresses-to-census-geocoder). PO boxes and patient ids are never sent.")


@click.command("link")
@click.argument("history", type=click.Path(exists=True, dir_okay=False))
@click.option("--boundaries", "boundaries", type=YEAR_FILE, multiple=True, required=True,
              metavar="YEAR FILE", help="Block-group boundary file of a boundary vintage, e.g. "
              "`--boundaries 2020 tl_2020_24_bg.zip`. Repeat for 2010 and 2020.")
@click.option("--zcta-boundaries", "zcta_boundaries", type=YEAR_FILE, multiple=True,
              metavar="YEAR FILE", help="ZCTA boundary file of a boundary vintage, for the ZCTA "
              "of addresses with coordinates. Repeatable.")
@click.option("--zip-crosswalk", type=click.Path(exists=True, dir_okay=False), default=None,
              help="UDS ZIP-to-ZCTA or HUD ZIP-to-county crosswalk (CSV or xlsx): addresses "
                   "with a ZIP and no coordinates get the ZIP's ZCTA (or county), flagged "
                   "precision=zcta, never a tract or block group.")
@click.option("--zip-crosswalk-year", type=click.Choice(["2010", "2020"]), default=None,
              help="Boundary vintage of a UDS crosswalk's ZCTAs (UDS files do not say it; HUD "
                   "file names do).")
@click.option("--send-addresses-to-census-geocoder", "send_addresses", is_flag=True,
              help="Send street addresses that have no coordinates to the U.S. Census Bureau's "
                   "geocoder (PHI LEAVES THIS MACHINE). Without it nothing is sent and they are "
                   "recorded as geocode_failed (or linked by ZIP with --zip-crosswalk).")
@click.option("--geocoder-benchmark", default="Public_AR_Current", show_default=True,
              help="Census Geocoder benchmark (locator release).")
@click.option("--geocoder-vintage", default=None,
              help="Census Geocoder vintage, e.g. Current_Current, to also get its GEOIDs for "
                   "cross-checking; coordinates only when left out.")
@click.option("--geocoder-url", default="https://geocoding.geo.census.gov/geocoder",
              show_default=True, help="Census Geocoder base URL (a mirror or local server).")
@click.option("--pseudonymize", is_flag=True,
              help="Publish patient ids as HMAC-SHA256 keys with the secret in the environment "
                   "variable SDOH_PATIENT_KEY_SECRET, so the online store holds no raw ids; "
                   "lookups hash the ids they are given with the same secret.")
@workspace_option
def link(history, boundaries, zcta_boundaries, zip_crosswalk, zip_crosswalk_year, send_addresses,
         geocoder_benchmark, geocoder_vintage, geocoder_url, pseudonymize, workspace) -> None:
    """Link patients' address histories to 2010 and 2020 block groups, tracts, counties, ZCTAs.

    Runs locally unless --send-addresses-to-census-geocoder is given. Rejected rows are
    written to <workspace>/outputs/address_rejects/<run id>.csv (owner-only, 0600) with file,
    row, field and reason; <workspace>/outputs/address_rejects.csv points at those of the
    last run that published. The linkage funnel (periods and patients per outcome) is printed.

    \b
    Example:
      sdoh link addresses.csv --boundaries 2010 tl_2010_24_bg10.zip \\
                              --boundaries 2020 tl_2020_24_bg.zip \\
                              --zip-crosswalk ZIPCodetoZCTACrosswalk2021UDS.xlsx \\
                              --zip-crosswalk-year 2020 --pseudonymize
    """
    from ingestion.jobs.pipeline import link_history_file
    from ingestion.sources.geocoder import CensusGeocoder

    geocoder = None
    if send_addresses:
        click.echo(PHI_WARNING.format(url=geocoder_url), err=True)
        geocoder = CensusGeocoder(base_url=geocoder_url)
    try:
        result = link_history_file(
            history, {int(y): p for y, p in boundaries}, workspace=workspace,
            zcta_paths={int(y): p for y, p in zcta_boundaries},
            zip_crosswalk_path=zip_crosswalk,
            zip_crosswalk_year=int(zip_crosswalk_year) if zip_crosswalk_year else None,
            send_addresses_to_census_geocoder=send_addresses, geocoder=geocoder,
            geocoder_benchmark=geocoder_benchmark, geocoder_vintage=geocoder_vintage,
            pseudonymize=pseudonymize)
    finally:
        if geocoder is not None:
            geocoder.close()
    click.echo(result.funnel.to_string(index=False))
    click.echo(f"published {result.published.dataset}: {result.published.n_rows} address "
               f"periods ({result.published.report.summary()})")
    if result.n_rejected:
        click.echo(f"{result.n_rejected} rows rejected: see {result.rejects_path}")
