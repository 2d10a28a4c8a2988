"""What analysts ask of the features: coverage gaps, fairness, datasheets and the catalog.

- `equity.coverage` and `equity.coverage_report`: who is missing which feature, and why
- `equity.screening`: who is never screened for social needs, and screened needs against areas
- `equity.rurality`: rurality subgroups from RUCA codes, to group coverage by
- `equity.fairness`: fairness metrics by subgroup, with the catalog's thresholds
- `equity.datasheets`: a datasheet per feature service
- `equity.feature_catalog`: querying features by their equity metadata

It reads what `ingestion` published and `feature_repo` serves, and nothing imports it but the
CLI and notebooks. The names below are imported on first use.

Examples
--------
>>> from equity import coverage_table
>>> table = coverage_table(frame, patients, features="acs_tract__pct_below_poverty", by="payer")
>>> table[["group", "n", "missing_rate"]]
        group  n  missing_rate
0  commercial  6      1.000000
1    medicaid  6      0.666667
"""

from importlib import import_module

_EXPORTS = {
    "coverage_table": "coverage", "feature_coverage": "coverage",
    "missing_reasons_table": "coverage", "missingness_odds_ratios": "coverage",
    "wilson_interval": "coverage",
    "coverage_report": "coverage_report", "add_rurality": "rurality",
    "fairness_check": "fairness", "fairness_drift": "fairness", "fairness_report": "fairness",
    "split_by_fairness_role": "fairness",
    "datasheets": "datasheets", "write_datasheets": "datasheets",
    "feature_catalog": "feature_catalog",
    "needs_vs_area": "screening", "screening_coverage": "screening",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'equity' has no attribute {name!r}")
    return getattr(import_module(f"equity.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
