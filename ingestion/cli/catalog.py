"""``sdoh catalog``: list and filter features by their equity metadata."""

from __future__ import annotations

import click

from ingestion.cli._common import existing_workspace_option, run_settings

# Columns of the table format; JSON and CSV carry every column.
TABLE_COLUMNS = ("view", "field", "domain", "measure_type", "proxy_for", "fairness_role", "vintage",
                 "reliability", "low_reliability_share")


def parse_where(pairs: tuple[str, ...]) -> dict[str, list[str]]:
    """``("proxy_for=race", "proxy_for=sex")`` as ``{"proxy_for": ["race", "sex"]}``.

    Examples
    --------
    >>> parse_where(("proxy_for=race", "domain=education"))
    {'proxy_for': ['race'], 'domain': ['education']}
    """
    where: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE, e.g. proxy_for=race",
                                     param_hint="--where")
        where.setdefault(key.strip(), []).append(value.strip())
    return where


@click.command("catalog")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              callback=lambda _ctx, _param, pairs: parse_where(pairs),  # a usage error comes first
              help="Keep features whose metadata KEY is VALUE or lists it (proxy_for=race matches "
                   "'race,ethnicity'). Repeat: different keys must all match, one key's values "
                   "any. KEY is any metadata key of DESIGN.md section 4, or reliability.")
@click.option("--view", "views", multiple=True, metavar="NAME",
              help="Only this feature view (repeatable); default every view.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="table shows the main keys; json and csv carry every key.")
@click.option("--low-share", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="reliability=low threshold: share of a measure's published rows classed low.")
@existing_workspace_option
def catalog(where, views, fmt, low_share, workspace) -> None:
    """List features with their equity metadata, filtered by any metadata key.

    Tags come from the Feast registry if `sdoh apply` ran, else from the definitions built
    for what the workspace has published. Every column of a measure (value, MOE, CV,
    reliability, missing reason) carries the measure's tags and is listed.

    --where reliability=low keeps the ACS measures for which more than --low-share of the
    published rows with an estimate (every vintage and GEOID of the view's parquet files) have
    the reliability class "low" in their <measure>_reliability column (CV above the medium
    bound of the rule the rows were built with, 40% by default). reliability=acceptable keeps
    the others with classes; reliability=not_applicable keeps fields without classes (indices,
    patient geography).

    \b
    Example:
      sdoh catalog --where proxy_for=race --workspace sdoh_workspace
      sdoh catalog --where reliability=low --view acs_tract --format csv > unreliable.csv
      sdoh catalog --where domain=economic_stability --format json
    """
    from equity.feature_catalog import feature_catalog

    frame = feature_catalog(workspace, where=where, views=list(views) or None, low_share=low_share,
                            profile=run_settings().profile)
    if fmt == "json":
        click.echo(frame.to_json(orient="records", indent=1))
    elif fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        click.echo("no feature matches " + " and ".join(
            f"{key}={'|'.join(values)}" for key, values in where.items()), err=True)
    else:
        columns = [*TABLE_COLUMNS, *(k for k in where if k not in TABLE_COLUMNS)]
        click.echo(frame[columns].to_string(index=False, float_format="{:.2f}".format))
