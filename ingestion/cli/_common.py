"""What every command shares: the workspace option and turning errors into one-line messages."""

from __future__ import annotations

import traceback

import click

from ingestion.core.workspace import Workspace

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


def workspace_option(func):
    """``--workspace DIR`` (env ``SDOH_WORKSPACE``), passed to the command as a `Workspace`."""
    return click.option(
        "--workspace", "workspace", envvar="SDOH_WORKSPACE", default="sdoh_workspace",
        show_default=True, type=click.Path(file_okay=False), callback=lambda _c, _p, v: Workspace(v),
        help="Folder holding raw, published and quarantined data and the Feast registry.",
    )(func)
