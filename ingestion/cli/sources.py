"""``sdoh sources``: the publisher sources the kit can ingest, one line per release."""

from __future__ import annotations

import click


@click.command("sources")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
def sources(fmt) -> None:
    """List every publisher source spec's releases: level, boundaries, availability day.

    Each line is one release of sdoh_sources/catalog/sources/<source>.yaml. available_from
    "unknown" means the publisher documents no release day: `sdoh ingest source` then needs
    --available-from. download "file only" means the publisher serves the file through a form:
    pass its path.

    \b
    Example:
      sdoh sources
      sdoh ingest source eji EJI_2022_Massachusetts_CSV.zip --release 2022
    """
    import pandas as pd

    from sdoh_sources.publisher import source_releases

    frame = pd.DataFrame(source_releases())
    if fmt == "json":
        click.echo(frame.to_json(orient="records", indent=1))
    elif fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    else:
        click.echo(frame.drop(columns="title").to_string(index=False))
