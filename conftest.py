"""Doctest fixtures: the names docstring examples use, built only when a doctest runs.

``ws`` is a small published workspace (the hand-built region of tests/hand_built.py),
``store`` its applied and materialized feature store (embedded profile), ``tracts`` its ACS
tract dataset and ``timeline`` its patient address timeline (both unpublished frames),
``frame`` a training frame of its four patients at three times and ``patients`` their made-up
attributes. Only doctests get them, and they only read ``ws`` and ``store``.
"""

import hashlib
import importlib.util
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

HAND_BUILT = Path(__file__).parent / "tests" / "hand_built.py"


@pytest.fixture(scope="session")
def hand_built_store(tmp_path_factory):
    """The hand-built region, published, applied and materialized once per session.

    Returns (store, ws, the hand_built module).

    Read-only for its users (the doctests and the retrieval, online and server tests share it):
    its teardown fails if any file of its workspace changed, naming the files.
    """
    import pandas as pd

    from feature_repo import apply_definitions, feature_store, materialize
    from ingestion.core.workspace import Workspace

    spec = importlib.util.spec_from_file_location("hand_built", HAND_BUILT)
    hand_built = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hand_built)
    ws = Workspace(tmp_path_factory.mktemp("hand_built"))
    hand_built.publish_hand_built(ws)
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    before = fingerprint(ws.root)
    yield store, ws, hand_built
    after = fingerprint(ws.root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"a user of the shared hand-built store changed {changed}; give it its own store"


def fingerprint(root: Path) -> dict[str, str]:
    """Each file under ``root`` (relative path) -> the SHA-256 of its bytes."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="session")
def doctest_frame(hand_built_store):
    """A training frame of patients A, B, C and E at three times, and their attributes."""
    import pandas as pd

    from feature_repo import training_frame

    store, ws, _ = hand_built_store
    times = ["2021-06-01", "2022-06-01", "2023-06-01"]
    events = pd.DataFrame([(p, t) for p in "ABCE" for t in times], columns=["patient_id", "event_timestamp"])
    patients = pd.DataFrame({"patient_id": list("ABCE"),
                             "race_ethnicity": ["black", "white", "black", "white"],
                             "payer": ["medicaid", "commercial", "commercial", "medicaid"],
                             "preferred_language": ["english", "spanish", "english", "english"],
                             "home_area": ["urban", "rural", "urban", "rural"]})
    return training_frame(events, store=store, workspace=ws), patients


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    """Give docstring examples the names above; other tests build nothing."""
    if isinstance(request.node, DoctestItem):
        store, ws, hand_built = request.getfixturevalue("hand_built_store")
        frame, patients = request.getfixturevalue("doctest_frame")
        doctest_namespace.update(ws=ws, store=store, tracts=hand_built.acs_frame("tract", hand_built.POVERTY),
                                 timeline=hand_built.TIMELINE.copy(), frame=frame.copy(),
                                 patients=patients.copy())
