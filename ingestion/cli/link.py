"""``sdoh link``: link an address-history file to census geographies and publish the timeline."""

from __future__ import annotations

import click

from ingestion.cli._common import workspace_option


@click.command("link")
@click.argument("history", type=click.Path(exists=True, dir_okay=False))
@click.option("--boundaries", "boundaries", nargs=2, multiple=True, required=True,
              metavar="YEAR FILE", help="Block-group boundary file of a boundary vintage, e.g. "
              "`--boundaries 2020 tl_2020_24_bg.zip`. Repeat for 2010 and 2020.")
@workspace_option
def link(history, boundaries, workspace) -> None:
    """Link patients' address histories to 2010 and 2020 block groups, tracts and counties.

    Runs locally: no address leaves the machine. Rejected rows are written to
    <workspace>/outputs/address_rejects.csv with file, row, field and reason.

    \b
    Example:
      sdoh link addresses.csv --boundaries 2010 tl_2010_24_bg10.zip \\
                              --boundaries 2020 tl_2020_24_bg.zip
    """
    from ingestion.pipeline import link_history_file

    result = link_history_file(history, {int(y): p for y, p in boundaries}, workspace=workspace)
    click.echo(result.funnel.to_string(index=False))
    if result.n_rejected:
        click.echo(f"{result.n_rejected} rows rejected: see {result.rejects_path}")
