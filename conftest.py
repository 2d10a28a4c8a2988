"""The hand-built region shared by the session, and the names docstring examples use.

`hand_built_published`, `hand_built_copy` and `hand_built_store` publish, copy and serve the
region of tests/hand_built.py once per session for every test that only reads it.

``ws`` is a small published workspace (the hand-built region of tests/hand_built.py),
``store`` its applied and materialized feature store (embedded profile), ``tracts`` its ACS
tract dataset and ``timeline`` its patient address timeline (both unpublished frames),
``frame`` a training frame of its four patients at three times and ``patients`` their made-up
attributes. Only doctests get them, and they only read ``ws`` and ``store``.
"""

import contextlib
import hashlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

HAND_BUILT = Path(__file__).parent / "tests" / "hand_built.py"


@pytest.fixture(scope="session")
def hand_built_published(tmp_path_factory):
    """The hand-built region published once per session: (workspace, the hand_built module).

    Publishing validates every dataset and costs seconds; tests take a copy with
    `hand_built_copy` rather than publishing again. Its teardown fails if any file changed.
    """
    from ingestion.core.workspace import Workspace

    spec = importlib.util.spec_from_file_location("hand_built", HAND_BUILT)
    hand_built = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hand_built)
    ws = Workspace(tmp_path_factory.mktemp("hand_built_published"))
    hand_built.publish_hand_built(ws)
    with unchanged(ws.root, "the session's published hand-built region"):
        yield ws, hand_built


@pytest.fixture(scope="session")
def hand_built_copy(hand_built_published):
    """A function: root -> a new Workspace at ``root`` holding the hand-built region, published.

    The published datasets (their version folders and relative links) are copied, so the
    copy is the caller's to change, as if it had run tests/hand_built.py's publish_hand_built.
    """
    from ingestion.core.workspace import Workspace

    template, _ = hand_built_published

    def copy(root: Path) -> "Workspace":
        ws = Workspace(root)
        shutil.copytree(template.root / "published", ws.root / "published", symlinks=True)
        return ws

    return copy


@pytest.fixture(scope="session")
def hand_built_store(tmp_path_factory, hand_built_published, hand_built_copy):
    """The hand-built region, published, applied and materialized once per session.

    Returns (store, ws, the hand_built module).

    Read-only for its users (the doctests and the retrieval, online and server tests share it):
    its teardown fails if any file of its workspace changed, naming the files.
    """
    import pandas as pd

    from feature_repo import apply_definitions, feature_store, materialize

    ws = hand_built_copy(tmp_path_factory.mktemp("hand_built"))
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    with unchanged(ws.root, "a user of the session's hand-built store"):
        yield store, ws, hand_built_published[1]


@contextlib.contextmanager
def unchanged(root: Path, who: str) -> Iterator[None]:
    """Fail on exit if any file under ``root`` was added, removed or rewritten, naming them."""
    before = fingerprint(root)
    yield
    after = fingerprint(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"{who} changed {changed} in a shared fixture: give that test its own copy"


def fingerprint(root: Path) -> dict[str, str]:
    """Each file and link under ``root`` (relative path) -> the SHA-256 of its bytes or its target."""
    return {str(path.relative_to(root)): hashlib.sha256(
                os.readlink(path).encode() if path.is_symlink() else path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_symlink() or path.is_file()}


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
