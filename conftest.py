"""The hand-built region shared by the session, and the names docstring examples use.

`hand_built_published`, `hand_built_copy` and `hand_built_store` publish, copy and serve the
region of tests/hand_built.py once per session for every test that only reads it.

Doctests get names: ``ws`` is a small published workspace (the hand-built region of tests/hand_built.py),
``store`` its applied and materialized feature store (embedded profile), ``tracts`` its ACS
tract dataset and ``timeline`` its patient address timeline (both unpublished frames),
``frame`` a training frame of its four patients at three times and ``patients`` their made-up
attributes. Only doctests get them; examples in WRITING_EXAMPLES get a store of their own.
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
    a test that changes a file of its workspace fails, naming the files (`_shared_store_unchanged`).
    """
    ws = hand_built_copy(tmp_path_factory.mktemp("hand_built"))
    return (*served_copy(ws), hand_built_published[1])


@pytest.fixture(scope="session")
def hand_built_scratch_store(tmp_path_factory, hand_built_published, hand_built_copy):
    """Another served copy of the region, for the examples in WRITING_EXAMPLES: (store, ws, module)."""
    ws = hand_built_copy(tmp_path_factory.mktemp("hand_built_scratch"))
    return (*served_copy(ws), hand_built_published[1])


def served_copy(ws) -> tuple:
    """``ws``'s definitions applied and materialized (embedded profile): (store, ws)."""
    import pandas as pd

    from feature_repo import apply_definitions, feature_store, materialize

    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    return store, ws


@contextlib.contextmanager
def unchanged(root: Path, who: str) -> Iterator[None]:
    """Fail on exit if any file under ``root`` was added, removed or rewritten, naming them."""
    before = fingerprint(root)
    yield
    after = fingerprint(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"{who} changed {changed} of a shared fixture: give it a copy of its own"


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


# Examples that apply or materialize again (idempotent, but they rewrite the registry): they get
# `hand_built_scratch_store`, so the shared store stays byte for byte as built.
WRITING_EXAMPLES = {"apply_definitions", "materialize", "fast_materialize"}


def _example_writes(item: DoctestItem) -> bool:
    return item.name.rsplit(".", 1)[-1] in WRITING_EXAMPLES


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    """Give docstring examples the names above; other tests build nothing."""
    if isinstance(request.node, DoctestItem):
        name = "hand_built_scratch_store" if _example_writes(request.node) else "hand_built_store"
        store, ws, hand_built = request.getfixturevalue(name)
        frame, patients = request.getfixturevalue("doctest_frame")
        doctest_namespace.update(ws=ws, store=store, tracts=hand_built.acs_frame("tract", hand_built.POVERTY),
                                 timeline=hand_built.TIMELINE.copy(), frame=frame.copy(),
                                 patients=patients.copy())


@pytest.fixture(autouse=True)
def _shared_store_unchanged(request):
    """Fail a test or example that changed a file of the shared hand-built store, naming both."""
    if isinstance(request.node, DoctestItem):
        shares = not _example_writes(request.node)
    else:
        shares = "hand_built_store" in request.fixturenames
    if not shares:
        yield
        return
    _, ws, _ = request.getfixturevalue("hand_built_store")
    with unchanged(ws.root, request.node.nodeid):
        yield
