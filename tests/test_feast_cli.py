"""Feast's own CLI in a workspace's feast folder: the same objects as sdoh apply.

The module Feast loads there is written by feature_repo.definitions.feast_cli.

The real ``feast`` command runs in a subprocess that imports this checkout's code (PYTHONPATH),
from a folder outside any checkout, as a Feast user would.
"""

import datetime as dt
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore, FeatureView, FileSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from spec_frames import valid_frame

from feature_repo import OnlineLookup, apply_definitions, feature_store, materialize
from feature_repo.definitions.feast_cli import MODULE, repo_objects, write_cli_repo
from feature_repo.definitions.feature_views import feature_views
from ingestion.core.datasets import adi_spec
from ingestion.core.errors import PublishError
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish
from sdoh_sources import CatalogError

FEAST = Path(sys.executable).parent / "feast"
ROOT = Path(__file__).resolve().parents[1]
# A registry change as `feast plan` prints it; its changed properties follow on tab-led lines.
REGISTRY_CHANGE = re.compile(r"^(Created|Updated|Deleted) (entity|feature view|feature service|"
                             r"data source|on demand feature view|stream feature view|permission) (\S+)")
# Records hold None where retrieval's frames hold NaN in object columns: both mean missing.
pytestmark = pytest.mark.filterwarnings("ignore:Mismatched null-like values")


def at(text: str) -> dt.datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


def feast(ws: Workspace, *args: str, cwd: Path) -> str:
    """Run Feast's CLI on the workspace's feast folder; its output, or a failure showing it."""
    env = {k: v for k, v in os.environ.items() if k != "SDOH_PROFILE"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(FEAST), "-c", str(ws.feast), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"feast {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def changes(plan: str) -> list[tuple[str, str, str]]:
    """(change, kind, name) of each registry change ``feast plan`` announces."""
    return [m.groups() for m in map(REGISTRY_CHANGE.match, plan.splitlines()) if m]


def assert_same_objects(plan: str) -> None:
    """Feast's CLI would create, delete and change nothing but the stamps of view sources.

    Feast 0.67 stamps a source's created/updated times into the views it registers, which the
    objects a repo builds lack: ``feast plan`` lists every view with a batch source as
    "Updated" on ``batch_source`` even right after ``feast apply`` of the same repo.
    """
    assert [c for c in changes(plan) if c[:2] != ("Updated", "feature view")] == [], plan
    properties = {line[1:].split(":")[0] for line in plan.splitlines() if line.startswith("\t")}
    assert properties <= {"batch_source"}, plan


def snapshot(store: FeatureStore) -> dict:
    """Every entity, view (tags, fields and their tags) and service (tags, features) registered."""
    fresh = FeatureStore(config=store.config)  # no registry cache from before
    return {
        "entities": sorted(e.name for e in fresh.list_entities()),
        "views": {v.name: (v.tags, [(f.name, f.tags) for f in v.features], v.batch_source.path)
                  for v in fresh.list_feature_views()},
        "services": {s.name: (s.tags, sorted((p.name, tuple(f.name for f in p.features))
                                             for p in s.feature_view_projections))
                     for s in fresh.list_feature_services()},
    }


@pytest.fixture
def applied(hand_built_copy, tmp_path):
    """The hand-built region published and registered by `sdoh apply`'s library call."""
    ws = hand_built_copy(tmp_path / "ws")
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    return store, ws


def test_feast_plan_after_sdoh_apply_deletes_and_creates_nothing(applied, tmp_path):
    store, ws = applied
    assert_same_objects(feast(ws, "plan", cwd=tmp_path))


def test_feast_apply_keeps_every_view_and_service_with_their_tags(applied, tmp_path):
    store, ws = applied
    before = snapshot(store)
    assert set(before["views"]) == {"acs_tract", "acs_zcta", "acs_state", "patient_geography"}
    assert set(before["services"]) == {"model_inputs_v1", "equity_audit_v1"}
    feast(ws, "apply", cwd=tmp_path)
    assert snapshot(store) == before


def test_feast_materialize_incremental_continues_sdoh_materialize(applied, tmp_path):
    # A view never materialized gets only the last year from Feast (its rule for views without
    # a TTL): `sdoh materialize` does the history, Feast's CLI continues from its recorded end.
    store, ws = applied
    materialize(store, end=at("2021-01-01"), progress=False)
    feast(ws, "materialize-incremental", "2026-01-01T00:00:00", cwd=tmp_path)
    a, b = OnlineLookup(store, ws).patients(["A", "B"], at=at("2022-07-01"))
    # A's move on 2022-06-01 and vintage 2020 (released 2022-03-17) came through Feast's CLI.
    assert (a["acs_tract__geoid"], a["acs_tract__pct_below_poverty"]) == ("99001000100", 6.0)
    assert a["acs_state__pct_below_poverty"] == 2.0
    assert b["acs_tract__pct_below_poverty_missing"] == "po_box"


def test_a_dataset_published_later_is_created_not_a_deletion(applied, tmp_path):
    store, ws = applied
    publish(valid_frame(adi_spec(), 1), adi_spec(), ws)  # a small suite: publishing is quick
    plan = feast(ws, "plan", cwd=tmp_path)
    assert ("Created", "feature view", "adi_block_group") in changes(plan)
    assert not [c for c in changes(plan) if c[0] == "Deleted"], plan
    apply_definitions(store, ws)  # sdoh apply registers what Feast's CLI would
    assert_same_objects(feast(ws, "plan", cwd=tmp_path))


def test_the_cli_path_refuses_fields_without_equity_metadata(applied, monkeypatch):
    store, ws = applied
    views = feature_views(ws)
    del views[0].features[0].tags["proxy_for"]
    monkeypatch.setattr("feature_repo.definitions.feast_cli.feature_views",
                        lambda workspace, profile: views)
    with pytest.raises(CatalogError, match="proxy_for"):
        repo_objects(str(ws.feast / MODULE), profile="embedded")


def test_the_module_names_the_profile_and_is_private(applied):
    store, ws = applied
    module = ws.feast / MODULE
    assert "profile='embedded'" in module.read_text()
    assert stat.S_IMODE(module.stat().st_mode) == 0o600


def test_nothing_published_is_an_error_not_an_empty_repo(tmp_path):
    ws = Workspace(tmp_path / "empty")
    with pytest.raises(PublishError, match="nothing is published"):
        repo_objects(str(write_cli_repo(ws, profile="embedded")), profile="embedded")


@pytest.mark.parametrize(("profile", "environment", "kind"), [
    ("spark", None, SparkSource), ("spark", "embedded", SparkSource),
    ("embedded", "spark", FileSource), ("production", "spark", FileSource)])
def test_the_modules_profile_picks_the_sources_whatever_sdoh_profile_says(
        applied, monkeypatch, profile, environment, kind):
    # Feast's CLI imports the module without the settings sdoh ran with: the profile written
    # into it (the one feature_store.yaml was rendered for) decides, not the environment.
    store, ws = applied
    if environment is None:
        monkeypatch.delenv("SDOH_PROFILE", raising=False)
    else:
        monkeypatch.setenv("SDOH_PROFILE", environment)
    objects = repo_objects(str(ws.feast / MODULE), profile=profile)
    sources = {type(o.batch_source) for o in objects.values() if isinstance(o, FeatureView)}
    assert sources == {kind}


@pytest.mark.parametrize(("stray", "warned"), [("extra.py", True), ("notes/extra.py", False)])
def test_other_python_files_feast_would_import_are_named(tmp_path, caplog, stray, warned):
    ws = Workspace(tmp_path / "ws")
    path = ws.feast / stray
    path.parent.mkdir(exist_ok=True)
    path.write_text("x = 1\n")
    with caplog.at_level(logging.WARNING, logger="feature_repo.definitions.feast_cli"):
        write_cli_repo(ws, profile="embedded")
    assert ("extra.py" in caplog.text) == warned, caplog.text


def test_a_users_feastignore_is_kept(tmp_path):
    ws = Workspace(tmp_path / "ws")
    (ws.feast / ".feastignore").write_text("mine.py\n")
    write_cli_repo(ws, profile="embedded")
    assert (ws.feast / ".feastignore").read_text() == "mine.py\n"

