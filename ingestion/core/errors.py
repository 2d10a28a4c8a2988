"""Errors raised by ingestion; all derive from `SdohError` so the CLI can report them cleanly."""

from sdoh_sources.errors import SdohError


class CensusApiError(SdohError):
    """A Census Data API request failed; the message names the URL (key redacted) and why."""


class InputError(SdohError, ValueError):
    """An input file is malformed; the message names the file, row and field."""


class LinkageError(SdohError):
    """Linking locations to geographies could not proceed."""


class ValidationFailed(SdohError):
    """A dataset failed its Great Expectations suite and was quarantined, not published."""

    def __init__(self, message: str, *, report_path: str | None = None):
        super().__init__(message)
        self.report_path = report_path


class PublishError(SdohError):
    """Publishing or serving features could not proceed."""


class ServiceUrlError(SdohError, ValueError):
    """A service URL a client would send requests to is malformed or unsafe (plain http)."""


class ServiceUnavailable(SdohError):
    """A service the profile needs (the PostgreSQL registry, Redis) cannot be reached.

    The message names the service (credentials redacted), the cause, and what to do.
    """


class OnlineStoreUnavailable(ServiceUnavailable):
    """The online store cannot answer now: unreachable, timed out, or it lost what was loaded.

    The message says which store or view and what to do (wait, or ``sdoh materialize``);
    the feature server answers it as a JSON 503.
    """


class ServerSecurityError(SdohError):
    """The feature server's settings would expose patient data; the message says what to set."""
