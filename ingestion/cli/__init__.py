"""The ``sdoh`` command: thin wrappers over the library, one module per command group.

Commands import the library inside their bodies so that ``sdoh --help`` answers at once.
"""

from __future__ import annotations

import logging
import sys

import click

from ingestion.cli._common import SdohGroup, run_settings
from ingestion.cli.boundaries import boundaries
from ingestion.cli.catalog import catalog
from ingestion.cli.coverage import coverage
from ingestion.cli.datasheet import datasheet
from ingestion.cli.demo import demo
from ingestion.cli.fairness import fairness_check
from ingestion.cli.ingest import ingest
from ingestion.cli.link import link
from ingestion.cli.patients import patients
from ingestion.cli.serve import apply, materialize, online, serve, training_frame
from ingestion.cli.sources import sources


@click.group(cls=SdohGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True,
              help="Log debug messages too, and show an error's causes and traceback.")
@click.version_option(package_name="sdoh-feature-store")
def sdoh(verbose: bool) -> None:
    """Health-equity feature store: SDOH pipelines from public sources to Feast.

    An error prints one line, its cause and what to do, and exits with code 1 (2 for a
    usage error); `sdoh -v COMMAND ...` adds the details: the chain of causes and the
    traceback.

    Settings come from the environment (SDOH_WORKSPACE, SDOH_PROFILE, SDOH_REDIS, ...), read
    once when the command starts; an option given on the command line wins over them.

    \b
    Start with the offline demo (it writes ./sdoh_workspace, every command's default):
      sdoh demo
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ingestion.core.known_warnings import dropped

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "feast", "urllib3", "matplotlib", "pyogrio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx = click.get_current_context()
    run_settings()  # read once, before any command: a bad value fails here, in one line
    # For the command's run: the warnings of dependencies that every run would print are
    # dropped, any other goes to the log; log lines are written above progress bars, not
    # through them.
    ctx.with_resource(dropped())
    ctx.with_resource(logging_redirect_tqdm())


for command in (demo, sources, ingest, boundaries, patients, link, apply, materialize, training_frame, online,
                serve, catalog, datasheet, coverage, fairness_check):
    sdoh.add_command(command)


def main() -> None:
    """Entry point of the console script."""
    from ingestion.core.known_warnings import ignore

    ignore()  # the process is the command's: dependencies' warnings stay off until it exits
    sdoh(prog_name="sdoh")


__all__ = ["main", "sdoh"]
