"""Settings read once from the environment and passed down; nothing here runs at import."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping


def default_worker_python(environ: MutableMapping[str, str]) -> None:
    """Make Spark start its Python workers with this interpreter, unless ``PYSPARK_PYTHON`` is set.

    Spark reads ``PYSPARK_PYTHON`` (else the "python3" on PATH) when a session starts: call
    this first, with ``os.environ``. This interpreter has the packages the workers run; on a
    cluster, set ``PYSPARK_PYTHON`` to the executors' Python.

    Examples
    --------
    >>> environ = {}
    >>> default_worker_python(environ)
    >>> environ["PYSPARK_PYTHON"] == sys.executable
    True
    """
    environ.setdefault("PYSPARK_PYTHON", sys.executable)
