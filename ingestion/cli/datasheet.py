"""``sdoh datasheet``: Markdown and HTML datasheets for feature views and services."""

from __future__ import annotations

import click

from ingestion.cli._common import existing_workspace_option, run_settings

FORMATS = {"md": ("md",), "html": ("html",), "both": ("md", "html")}


@click.command("datasheet")
@click.argument("names", nargs=-1, metavar="[VIEW_OR_SERVICE]...")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Folder to write <name>.md / <name>.html into (created if needed).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="both", show_default=True,
              help="Markdown, HTML or both.")
@existing_workspace_option
def datasheet(names, out, fmt, workspace) -> None:
    """Write a datasheet per feature view and feature service (default: every one).

    Each says: sources and licences; vintages, release dates and boundary vintages (with
    rows per vintage); each measure with its MOE column and its reliability classes; coverage
    (share with a value, commonest missing reasons); proxies for protected attributes; known
    biases; intended and prohibited uses. Numbers come from the published parquet files,
    metadata from the fields' tags (the Feast registry if applied, else the built definitions).

    \b
    Example:
      sdoh datasheet --out datasheets --workspace sdoh_workspace
      sdoh datasheet acs_tract equity_audit_v1 --out datasheets --format md
    """
    from equity.datasheets import write_datasheets

    for path in write_datasheets(workspace, list(names) or None, out=out, formats=FORMATS[fmt],
                                 profile=run_settings().profile):
        click.echo(str(path))
