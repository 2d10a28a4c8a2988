"""The hand-built region shared by the session, and the names docstring examples use.

`hand_built_published`, `hand_built_copy` and `hand_built_store` publish, copy and serve the
region of tests/hand_built.py once per session for every test that only reads it.

Doctests get names: ``ws`` is a small published workspace (the hand-built region of tests/hand_built.py),
``store`` its applied and materialized feature store (embedded profile), ``tracts`` its ACS
tract dataset and ``timeline`` its patient address timeline (both unpublished frames),
``frame`` a training frame of its four patients at three times and ``patients`` their made-up
attributes. Only doctests get them; examples in WRITING_EXAMPLES get a store of their own.

Examples that need a service or data name it, and only those start it (`ON_REQUEST`):
``demo`` is the folder of a small synthetic demo region (ingestion/demo/region.py: Census API
responses, TIGER zips, ADI files, address histories of state 99), ``census`` a `CensusClient`
pointed at a local replay server of its Census API responses, ``adi_inputs`` its ACS 2021
block-group ADI inputs with group quarters (as `ingest_adi_acs` reads them), ``tiger_url`` the
base URL of a local file server holding its TIGER zips at the Census Bureau's paths,
``real_data`` the folder of real publisher files (../shared/data/real; skipped when absent, a
failure with SDOH_REQUIRE_REAL_DATA=1 as in CI) and ``scratch`` a new, empty `Workspace` (in a
folder of its own) for examples that write.
"""

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem


def _tests_module(name: str):
    """A helper module of tests/ (not on sys.path for the doctests of the packages)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def hand_built_published(tmp_path_factory):
    """The hand-built region published once per session: (workspace, the hand_built module).

    Publishing validates every dataset and costs seconds; tests take a copy with
    `hand_built_copy` rather than publishing again. Its teardown fails if any file changed.
    """
    from ingestion.core.workspace import Workspace

    hand_built = _tests_module("hand_built")
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


@pytest.fixture(scope="session")
def doctest_demo(tmp_path_factory) -> Path:
    """A small synthetic demo region (20 patients), generated once per session (about a second)."""
    from ingestion.demo.region import generate_demo_region

    root = tmp_path_factory.mktemp("doctest_demo")
    generate_demo_region(root, n_patients=20)
    return root


@pytest.fixture(scope="session")
def doctest_census(doctest_demo):
    """A `CensusClient` (no key, no cache) answered by a local replay of the demo region's API."""
    from ingestion.demo.replay import CensusReplayServer
    from ingestion.sources.census_api import CensusClient

    with CensusReplayServer(doctest_demo / "census_api") as server, \
            CensusClient(base_url=server.base_url, api_key=None, cache_dir=None) as client:
        yield client


@pytest.fixture(scope="session")
def doctest_tiger_url(doctest_demo, tmp_path_factory):
    """The base URL of a local file server holding the demo region's TIGER zips at Census's paths."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    from ingestion.sources.tiger import boundary_url

    root = tmp_path_factory.mktemp("doctest_tiger")
    for year in (2010, 2020):
        target = root / urlsplit(boundary_url("block_group", year, "99")).path.lstrip("/")
        target.parent.mkdir(parents=True)
        shutil.copyfile(doctest_demo / "tiger" / target.name, target)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the http.server API)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/geo/tiger"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="session")
def doctest_adi_inputs(doctest_census):
    """The demo region's ACS 2021 block-group ADI inputs and group quarters, as `ingest_adi_acs` reads."""
    from ingestion.derive.adi import GEOID, adi_variables
    from ingestion.jobs.ingest import group_quarters_inputs
    from ingestion.sources.census_api import get_acs

    variables = sorted({v[:-1] for v in adi_variables(2021)})
    inputs = get_acs("block group", variables, 2021, "99", client=doctest_census, output="wide")
    return inputs.merge(group_quarters_inputs(2021, "99", doctest_census), on=GEOID, how="left")


@pytest.fixture
def doctest_real_data() -> Path:
    """../shared/data/real, or a skip (a failure with SDOH_REQUIRE_REAL_DATA=1, as in CI)."""
    return _tests_module("needs").real_path()


@pytest.fixture
def doctest_scratch(tmp_path):
    """A new, empty workspace of the example's own."""
    from ingestion.core.workspace import Workspace

    return Workspace(tmp_path)


# Namespace name -> the fixture behind it, started only for an example whose code uses the name.
ON_REQUEST = {"demo": "doctest_demo", "census": "doctest_census", "adi_inputs": "doctest_adi_inputs",
              "tiger_url": "doctest_tiger_url", "real_data": "doctest_real_data",
              "scratch": "doctest_scratch"}


def _names_used(item: DoctestItem) -> set[str]:
    source = "\n".join(example.source for example in item.dtest.examples)
    return {name for name in ON_REQUEST if re.search(rf"\b{name}\b", source)}


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
        doctest_namespace.update({name: request.getfixturevalue(ON_REQUEST[name])
                                  for name in _names_used(request.node)})


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
