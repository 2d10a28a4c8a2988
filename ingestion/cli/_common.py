"""What every command shares: the workspace option and turning project errors into messages."""

from __future__ import annotations

import click

from ingestion.workspace import Workspace
from sdoh_sources import SdohError


class SdohGroup(click.Group):
    """A click group that reports the project's own errors as a clean message and exit code 1."""

    def invoke(self, ctx: click.Context):
        """Run the command, translating `SdohError` at the CLI boundary only."""
        try:
            return super().invoke(ctx)
        except SdohError as exc:
            raise click.ClickException(str(exc)) from exc


def workspace_option(func):
    """``--workspace DIR`` (env ``SDOH_WORKSPACE``), passed to the command as a `Workspace`."""
    return click.option(
        "--workspace", "workspace", envvar="SDOH_WORKSPACE", default="sdoh_workspace",
        show_default=True, type=click.Path(file_okay=False), callback=lambda _c, _p, v: Workspace(v),
        help="Folder holding raw, published and quarantined data and the Feast registry.",
    )(func)
