"""Doctest fixtures: the names docstring examples use, built only when a doctest runs.

``ws`` is a small published workspace (the hand-built region of tests/hand_built.py) and
``store`` its applied and materialized feature store (embedded profile). Only doctests get them.
"""

import importlib.util
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

HAND_BUILT = Path(__file__).parent / "tests" / "hand_built.py"


@pytest.fixture(scope="session")
def hand_built_store(tmp_path_factory):
    """The hand-built region, published, applied and materialized once per session: (store, ws).

    Read-only for its users: the doctests and tests/test_retrieval.py share it.
    """
    import pandas as pd

    from feature_repo import apply_definitions, feature_store, materialize
    from ingestion.workspace import Workspace

    spec = importlib.util.spec_from_file_location("hand_built", HAND_BUILT)
    hand_built = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hand_built)
    ws = Workspace(tmp_path_factory.mktemp("hand_built"))
    hand_built.publish_hand_built(ws)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    return store, ws


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    """Give docstring examples ``ws`` and ``store``; other tests build nothing."""
    if isinstance(request.node, DoctestItem):
        store, ws = request.getfixturevalue("hand_built_store")
        doctest_namespace.update(ws=ws, store=store)
