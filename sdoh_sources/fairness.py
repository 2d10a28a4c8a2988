"""Fairness gates as data: sdoh_sources/catalog/fairness_thresholds.yaml, validated.

`load_fairness_thresholds` reads the limits on the gaps between patient groups that
``sdoh fairness-check`` gates a model's predictions on (`equity.fairness` computes the gaps),
from the packaged file or a copy tuned for one model.

Examples
--------
>>> from sdoh_sources.fairness import load_fairness_thresholds
>>> load_fairness_thresholds().min_group_size
30
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sdoh_sources.catalog import read_catalog_file

CATALOG_FILE = "fairness_thresholds.yaml"
#: The gaps `equity.fairness.fairness_report` computes, which a thresholds file may bound.
METRICS = ("demographic_parity_difference", "demographic_parity_ratio",
           "equalized_odds_difference", "equal_opportunity_difference", "calibration_gap")


class FairnessThresholds(BaseModel):
    """Limits on the gaps, as a thresholds file states them (its ``thresholds`` are ``limits``).

    Examples
    --------
    >>> FairnessThresholds(limits={"calibration_gap": {"max": 0.05}}).min_group_size
    1
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    limits: dict[str, dict[Literal["max", "min"], float]] = Field(default_factory=dict,
                                                                  alias="thresholds")
    min_group_size: int = 1
    group_columns: tuple[str, ...] = ()

    @field_validator("limits", mode="before")
    @classmethod
    def _known_metrics_and_bounds(cls, limits: Any) -> Any:
        if limits is None:
            return {}
        if not isinstance(limits, dict):
            return limits
        unknown = sorted(set(limits) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(METRICS)}")
        for metric, bound in limits.items():
            if (not isinstance(bound, dict) or not bound or set(bound) - {"max", "min"}
                    or not all(isinstance(v, int | float) for v in bound.values())):
                raise ValueError(f"thresholds.{metric} must be a mapping like {{max: 0.1}} or "
                                 f"{{min: 0.8}}, got {bound!r}")
        return limits

    @field_validator("group_columns", mode="before")
    @classmethod
    def _none_is_empty(cls, columns: Any) -> Any:
        return () if columns is None else columns


def load_fairness_thresholds(path: str | os.PathLike[str] | None = None) -> FairnessThresholds:
    """Load and check sdoh_sources/catalog/fairness_thresholds.yaml, or a copy of it.

    Parameters
    ----------
    path
        A thresholds file of the same layout (tuned for one model) to read instead; it is
        read on every call, the packaged file once.

    Returns
    -------
    FairnessThresholds

    Raises
    ------
    CatalogError
        The file is not YAML, names a metric outside `METRICS`, a bound is not a number under
        ``max``/``min``, or a key is unknown; the message names the file and the field.

    Examples
    --------
    >>> load_fairness_thresholds().limits["demographic_parity_ratio"]
    {'min': 0.8}
    """
    return read_catalog_file(CATALOG_FILE, FairnessThresholds, path=path)
