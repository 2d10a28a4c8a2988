"""Valid synthetic frames for any `DatasetSpec`, for tests and timing runs.

``valid_frame(spec, n_rows)`` returns a frame that passes the spec's suite: columns in spec
order and in the dtypes `ingestion.gate.publish` writes (strings as object, int64, float64, bool,
timestamps as ``datetime64[us, UTC]``), GEOIDs matching their regexes and unique per key,
numbers within their ranges, vocabularies from their allowed sets. ``*_missing`` columns are
null (every value present). Tests then break one thing at a time.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ingestion.core.datasets import ColumnRule, DatasetSpec

_DIGITS = re.compile(r"^\^\\d\{(\d+)\}\$$")
_BASE_TS = pd.Timestamp("2022-03-17", tz="UTC")
# Values tried, in order, for a text column whose regex is not a run of digits.
_TEXT_SAMPLES = ("raw",)


def _digits(rule: ColumnRule) -> int:
    match = _DIGITS.match(rule.regex or "")
    if not match:
        raise ValueError(f"valid_frame: no generator for regex {rule.regex!r} of {rule.name}")
    return int(match.group(1))


def _column(rule: ColumnRule, n: int, rng: np.random.Generator, *, unique: bool) -> pd.Series:
    if rule.dtype == "string":
        sample = next((t for t in _TEXT_SAMPLES if rule.regex and re.fullmatch(rule.regex, t)), None)
        if sample is not None:
            return pd.Series([sample] * n, dtype=object)
        if rule.regex is not None:
            width = _digits(rule)
            if unique:
                if n > 10**width:
                    raise ValueError(f"{n} rows cannot have unique {width}-digit {rule.name}")
                numbers = np.arange(n, dtype=np.int64)
            else:
                numbers = rng.integers(0, 10**width, size=n, dtype=np.int64)
            return pd.Series(numbers).astype(str).str.zfill(width).astype(object)
        if rule.allowed is not None:
            if rule.nullable and rule.name.endswith("_missing"):
                return pd.Series([None] * n, dtype=object)
            return pd.Series(rng.choice(np.array(rule.allowed, dtype=object), size=n),
                             dtype=object)
        return pd.Series([f"{rule.name}_{i}" for i in range(n)], dtype=object)
    if rule.dtype == "int64":
        if rule.allowed is not None:
            values = np.array([int(v) for v in rule.allowed], dtype=np.int64)
            return pd.Series(rng.choice(values, size=n), dtype="int64")
        low = int(rule.minimum) if rule.minimum is not None else 0
        high = int(rule.maximum) if rule.maximum is not None else low + 1000
        return pd.Series(rng.integers(low, high + 1, size=n), dtype="int64")
    if rule.dtype == "float64":
        if rule.allowed is not None:
            return pd.Series(rng.choice([float(v) for v in rule.allowed], size=n),
                             dtype="float64")
        low = rule.minimum if rule.minimum is not None else 0.0
        high = rule.maximum if rule.maximum is not None else low + 1000.0
        return pd.Series(np.round(rng.uniform(low, high, size=n), 3), dtype="float64")
    if rule.dtype == "bool":
        return pd.Series(np.ones(n, dtype=bool), dtype="bool")
    if rule.dtype == "timestamp":
        days = rng.integers(0, 365, size=n) if not unique else np.arange(n)
        return pd.Series(_BASE_TS + pd.to_timedelta(days, unit="D")).astype(
            "datetime64[us, UTC]"
        )
    raise ValueError(f"valid_frame: unknown dtype {rule.dtype!r} of {rule.name}")


def valid_frame(spec: DatasetSpec, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame of ``n_rows`` rows that passes ``spec``'s validation suite.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset schema.
    n_rows : int
        Number of rows.
    seed : int, optional
        Seed of the random values (ranges, vocabularies).

    Returns
    -------
    pandas.DataFrame
        Columns in ``spec.column_names`` order; the first key column is unique per row.

    Examples
    --------
    >>> from ingestion.core.datasets import acs_spec
    >>> valid_frame(acs_spec("tract"), 3)["tract_geoid"].tolist()
    ['00000000000', '00000000001', '00000000002']
    """
    rng = np.random.default_rng(seed)
    unique = spec.key_columns[0]
    data = {r.name: _column(r, n_rows, rng, unique=r.name == unique) for r in spec.columns}
    return pd.DataFrame(data, columns=list(spec.column_names))
