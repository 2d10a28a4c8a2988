"""Feature services: the two ways features are consumed, model training and equity audit."""

from __future__ import annotations

from feast import FeatureService, FeatureView

from feature_repo.definitions.feature_views import LINKED_LEVELS
from ingestion.core.datasets import screened_needs_spec


def _model_input_features(view: FeatureView) -> list[str]:
    # Values with MOE, CV, reliability and missing reason, for measures meant as model inputs
    # only: every column of a measure carries the measure's fairness_role.
    return [f.name for f in view.features if f.tags.get("fairness_role") == "model_input"]


def feature_services(views: list[FeatureView]) -> list[FeatureService]:
    """``model_inputs_v1`` (area measures allowed as model inputs) and ``equity_audit_v1`` (all).

    Examples
    --------
    >>> feature_services([])[0].name
    'model_inputs_v1'
    """
    # Area views, and the patient's screened needs (individual level, keyed by patient).
    area_views = [v for v in views if v.tags.get("geography_level") in LINKED_LEVELS
                  or v.name == screened_needs_spec().name]
    model_inputs = FeatureService(
        name="model_inputs_v1",
        # Proxies for protected attributes with fairness_role other than model_input stay out.
        features=[v[_model_input_features(v)] for v in area_views],
        description="Area SDOH features and screened needs allowed as model inputs, with MOE, "
                    "reliability, reasons.",
        owner="sdoh-feature-store",
        tags={"fairness_roles": "model_input"},
    )
    equity_audit = FeatureService(
        name="equity_audit_v1",
        # Everything, proxies and uncertainty included, for auditing coverage and fairness.
        features=list(area_views),
        description="Every area feature incl. proxies, MOEs and CVs, for equity audits.",
        owner="sdoh-feature-store",
        tags={"fairness_roles": "all"},
    )
    return [model_inputs, equity_audit]
