"""The third-party warnings every run would print, and the two narrow ways they are silenced.

Each entry names one warning by message and category, with the library that raises it. The
library code ignores them only around the call that raises them (`ignored`), never by a filter
set at import. The ``sdoh`` command ignores them from its entry on (`ignore`, which also covers
those reported at exit) and drops them while a command runs (`dropped`), since Feast inserts
its own ``simplefilter("once", ...)`` filters in front of any set before it is imported. Any
other warning is shown as usual.

Examples
--------
>>> import warnings
>>> with ignored():
...     warnings.warn("module 'sre_parse' is deprecated", DeprecationWarning)
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

__all__ = ["KNOWN_WARNINGS", "dropped", "ignore", "ignored", "is_known"]

#: (message regex matched at the start, category): raised on every run by a dependency, not ours.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Great Expectations 1.x imports the deprecated sre modules.
    (r"module 'sre_(constants|parse)' is deprecated", DeprecationWarning),
    # ibis, under Feast's DuckDB offline store, calls a deprecated DuckDB method on every query.
    (r"fetch_arrow_table\(\) is deprecated", DeprecationWarning),
    # Feast flags its Spark source and store as alpha on every use; the profile pins feast 0.67.
    (r"The spark (data source API|offline store) is an experimental", RuntimeWarning),
    # Feast's metrics module leaves prometheus_client's files open until the process exits.
    (r"unclosed file <_io\.BufferedRandom name='[^']*feast_metrics_", ResourceWarning),
)


def is_known(message: Warning | str, category: type[Warning]) -> bool:
    """Whether a warning is one of `KNOWN_WARNINGS` (same message start, category or a subclass).

    Examples
    --------
    >>> is_known("module 'sre_constants' is deprecated", DeprecationWarning)
    True
    >>> is_known("module 'sre_constants' is deprecated", UserWarning)
    False
    """
    text = str(message)
    return any(issubclass(category, known) and re.match(pattern, text)
               for pattern, known in KNOWN_WARNINGS)


def ignore() -> None:
    """Add an "ignore" filter for each known warning, for the rest of the process.

    Only for a program's entry point (the ``sdoh`` command's ``main``), where it also covers
    what is reported at exit; library code uses `ignored` around one call.

    Examples
    --------
    >>> with warnings.catch_warnings():
    ...     ignore()
    ...     warnings.warn("fetch_arrow_table() is deprecated", DeprecationWarning)
    """
    for pattern, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)


@contextlib.contextmanager
def ignored() -> Iterator[None]:
    """Ignore the known warnings inside the block; the warning filters are restored after it.

    Wrap the one call that raises them. Like `warnings.catch_warnings`, it is not thread-safe.

    Examples
    --------
    >>> with ignored():
    ...     warnings.warn("fetch_arrow_table() is deprecated", DeprecationWarning)
    """
    with warnings.catch_warnings():
        ignore()
        yield


@contextlib.contextmanager
def dropped() -> Iterator[None]:
    """Route warnings to logging and drop the known ones, whatever filters libraries add meanwhile.

    For a command's whole run: every other warning becomes a ``py.warnings`` log record (so it
    goes through the same handler as the logs and the progress bars). On exit, warnings are
    shown as before.

    Examples
    --------
    >>> with dropped():
    ...     warnings.warn("module 'sre_constants' is deprecated", DeprecationWarning)
    """
    with warnings.catch_warnings():
        shown_by = warnings.showwarning
        logging.captureWarnings(True)  # so that later captureWarnings(True) calls (GX's) are no-ops
        captured_here = warnings.showwarning is not shown_by
        log = logging.getLogger("py.warnings")

        def show_unless_known(message, category, filename, lineno, file=None, line=None):
            if not is_known(message, category):  # logged here: logging's hook may not be active
                log.warning("%s", warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show_unless_known
        try:
            yield
        finally:
            if captured_here:
                logging.captureWarnings(False)
