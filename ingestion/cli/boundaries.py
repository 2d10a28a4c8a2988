"""``sdoh boundaries``: download TIGER/Line and cartographic boundary files into a local cache."""

from __future__ import annotations

import click

from ingestion.cli._common import run_settings


@click.group("boundaries")
def boundaries() -> None:
    """Boundary files: download the Census Bureau's shapefiles for linking and maps."""


@boundaries.command("download")
@click.argument("level")
@click.option("--year", type=int, required=True,
              help="File vintage, e.g. 2020 (TIGER2020). No default on purpose; which years "
                   "exist is in sdoh_sources/catalog/boundaries.yaml.")
@click.option("--state", "states", multiple=True,
              help="State as FIPS, postal code or name. Repeatable. Left out: the national file "
                   "where one exists (counties, ZCTAs), else every state's file.")
@click.option("--kind", type=click.Choice(["tiger", "cb"]), default="tiger", show_default=True,
              help="TIGER/Line (full detail, for linking) or cartographic boundary (generalised, "
                   "for maps).")
@click.option("--resolution", default=None,
              help="Cartographic boundary resolution: 500k (the default), 5m or 20m.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Keep the files here, mirroring their URL; verified files are not downloaded "
                   "again and interrupted ones resume. Needed, or SDOH_CACHE_DIR.")
@click.option("--base-url", default="https://www2.census.gov/geo/tiger", show_default=True,
              help="Root of the files (a mirror or local server behind a firewall).")
@click.option("--workers", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Files downloaded at once.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar over files (default: when stderr is a terminal).")
def download(level, year, states, kind, resolution, cache_dir, base_url, workers,
             progress) -> None:
    """Download tract, block_group, county or zcta boundary zips; print each file and vintage.

    Each file is checked (length, zip CRC, shapefile parts) and gets a manifest beside it
    with its URL, size, SHA-256 and boundary vintage. Give the printed files to `sdoh link`.

    \b
    Example:
      sdoh boundaries download block_group --year 2020 --state PA --state DE \\
                                           --cache-dir ~/.cache/sdoh
      sdoh boundaries download zcta --year 2020 --cache-dir ~/.cache/sdoh
    """
    from ingestion.sources.tiger import download_boundaries, read_manifest

    cache_dir = run_settings(cache_dir=cache_dir).cache_dir
    if cache_dir is None:
        raise click.UsageError("a cache folder is needed: pass --cache-dir DIR or set SDOH_CACHE_DIR")
    try:
        paths = download_boundaries(level, year, list(states) or None, kind=kind,
                                    resolution=resolution, cache_dir=cache_dir, base_url=base_url,
                                    max_workers=workers, progress=progress)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from exc
    for path in paths:
        manifest = read_manifest(path)
        click.echo(f"{path}\tboundary vintage {manifest['boundary_vintage']}\t"
                   f"{manifest['size']} bytes\tsha256 {manifest['sha256']}")
    click.echo(f"{len(paths)} file(s) in {cache_dir}", err=True)
