"""What every command shares: the run's settings, the workspace option, one-line errors."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

import click

from ingestion.core.workspace import Workspace

if TYPE_CHECKING:
    from ingestion.core.settings import Settings

#: Exit codes of `sdoh`: 0 success, 1 an error (the project's own or an internal one),
#: 2 a usage error (click's).
ERROR_EXIT_CODE = 1


class _Reported(click.ClickException):
    """An error already worded for the user: one line first, the details only when verbose."""

    def __init__(self, message: str, *, error: BaseException, verbose: bool):
        super().__init__(message)
        self.exit_code = ERROR_EXIT_CODE
        self.error = error
        self.verbose = verbose

    def show(self, file=None) -> None:
        """Print ``error: <message>``; with ``-v``, then the causes and the traceback."""
        click.echo(f"error: {self.message}", err=True)
        if self.verbose:
            click.echo("".join(traceback.format_exception(self.error)).rstrip(), err=True)


class SdohGroup(click.Group):
    """A click group that reports every error as one line first and exits with code 1.

    The project's own errors (`SdohError`) print their message: its first line says the cause
    and what to do. Anything else is an internal error: one line naming it and asking to rerun
    with ``-v``. With ``sdoh -v``, the chain of causes and the traceback follow. Click's own
    exceptions (usage errors, ``--help``, aborts) pass through unchanged.
    """

    def invoke(self, ctx: click.Context):
        """Run the command, translating errors at the CLI boundary only."""
        from sdoh_sources import SdohError  # here, not at import: `sdoh --help` never needs it

        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SdohError as exc:
            raise _Reported(str(exc).strip() or type(exc).__name__, error=exc,
                            verbose=verbose) from exc
        except Exception as exc:  # the boundary: never a bare traceback without -v
            where = "" if verbose else " (rerun with -v for the traceback)"
            first = (str(exc).strip().splitlines() or [""])[0]
            raise _Reported(f"internal error: {type(exc).__name__}: {first}{where}; please report "
                            "it with the command that caused it", error=exc,
                            verbose=verbose) from exc


def run_settings(**explicit) -> Settings:
    """The settings of this run of ``sdoh``, read from the environment once, at its start.

    The ``sdoh`` group builds them before any command runs; a command invoked on its own
    builds them on first use. Options given on the command line (``explicit``, None meaning
    not given) win over the environment: they replace the run's values from then on.
    """
    from ingestion.core.settings import load_settings

    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = load_settings()
    given = {name: value for name, value in explicit.items() if value is not None}
    if given:
        root.obj = load_settings(root.obj, **given)
    return root.obj


def _workspace(_ctx, _param, value: str | None) -> Workspace:
    return Workspace(run_settings(workspace=value).workspace)


def _existing_workspace(ctx, param, value: str | None) -> Workspace:
    return _workspace(ctx, param, value).require_existing()


def _workspace_option(callback, what: str):
    return click.option(
        "--workspace", "workspace", default=None, show_default="$SDOH_WORKSPACE, else sdoh_workspace",
        type=click.Path(file_okay=False), callback=callback, help=what,
    )


def workspace_option(func):
    """``--workspace DIR`` of a command that writes (created if absent), passed as a `Workspace`.

    The option wins over ``SDOH_WORKSPACE``, which wins over the default ``sdoh_workspace``.
    """
    return _workspace_option(_workspace, "Folder holding raw, published and quarantined data and "
                             "the Feast registry; created if absent.")(func)


def existing_workspace_option(func):
    """``--workspace DIR`` of a command that reads: a folder that does not exist is an error.

    Checked before the command runs, so that nothing is created on disk. The option wins over
    ``SDOH_WORKSPACE``, which wins over the default ``sdoh_workspace``.
    """
    return _workspace_option(_existing_workspace, "Folder holding published data and the Feast "
                             "registry (as `sdoh demo` or `sdoh ingest` wrote it).")(func)
