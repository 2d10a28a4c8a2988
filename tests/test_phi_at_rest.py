"""PHI at rest: every file that can hold patient data is 0600 and its folders 0700, whatever the umask.

The pipeline runs in a child process whose umask is permissive (os.umask is process-wide, so
it is set there only; one process imports once and forks a pipeline per umask): link an address
history (timeline, rejects, Data Docs), publish the hand-built region, fail a publish
(quarantine), open the store (feature_store.yaml, SQLite online store), materialize, write a
training frame. The test then walks each workspace.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from ingestion.core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
HISTORY = """patient_id,valid_from,valid_to,street,city,state,zip,latitude,longitude
A,2019-01-01,,1 Main St,Springfield,XX,99001,39.5,-74.5
B,2019-13-01,,2 Main St,Springfield,XX,99001,39.5,-74.5
"""
# argv: workspaces folder, history, 2010 and 2020 block groups, then the umasks (octal). Imports
# once, then forks one pipeline per umask (run side by side), each into <folder>/<umask>. Prints,
# as JSON, each umask -> its exit status and every creation of feature_store.yaml or its
# temporary file: [how, permission bits it was created with].
CHILD = r"""
import io, json, os, sys
import pandas as pd
from feature_repo.serving.retrieval import write_training_frame
from feature_repo.serving.store import apply_definitions, feature_store, materialize
from hand_built import publish_hand_built
from ingestion.core.datasets import adi_spec
from ingestion.core.errors import ValidationFailed
from ingestion.jobs.pipeline import link_history_file
from ingestion.gate.publish import publish
from ingestion.gate.validation import validate
from ingestion.core.workspace import Workspace
from spec_frames import valid_frame

folder, history, bg2010, bg2020, *umasks = sys.argv[1:]
validate(valid_frame(adi_spec(), 3), adi_spec())  # Great Expectations' lazy imports, once

def pipeline(text, created):
    umask = int(text, 8)
    real_os_open, real_io_open = os.open, io.open

    def os_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT and "feature_store.yaml" in str(path):
            created.append(["os.open", mode & ~umask])
        return real_os_open(path, flags, mode, *args, **kwargs)

    def io_open(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax") and "feature_store.yaml" in str(file):
            created.append(["open", 0o666 & ~umask])
        return real_io_open(file, mode, *args, **kwargs)

    os.open, io.open = os_open, io_open
    ws = Workspace(os.path.join(folder, text))
    publish_hand_built(ws)
    link_history_file(history, {2010: bg2010, 2020: bg2020}, workspace=ws)
    bad = valid_frame(adi_spec(), 3)
    bad.loc[0, "block_group_geoid"] = "1"
    try:
        publish(bad, adi_spec(), ws)
    except ValidationFailed:
        pass
    store = feature_store(ws, profile="embedded")
    apply_definitions(store, ws)
    materialize(store, end=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime(), progress=False)
    events = pd.DataFrame({"patient_id": ["A"], "event_timestamp": ["2023-01-01T00:00:00Z"]})
    write_training_frame(events, ws.outputs / "frame.parquet", store=store, workspace=ws,
                         progress=False)

def fork(text):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.umask(int(text, 8))
        created, code = [], 0
        try:
            pipeline(text, created)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        with os.fdopen(write, "w") as out:
            json.dump(created, out)
        os._exit(code)
    os.close(write)
    return pid, read

running = {text: fork(text) for text in umasks}
report = {}
for text, (pid, read) in running.items():
    with os.fdopen(read) as got:
        created = json.load(got)
    report[text] = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), created]
print(json.dumps(report))
"""
# Files that can hold patient data (relative to the workspace), and what else must be private.
PHI_TREES = ("published", "staging", "quarantine", "outputs")
PHI_FILES = ("feast/online_store.db", "feast/feature_store.yaml")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


UMASKS = ("022", "000")


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory) -> dict[str, tuple[int, list, Path, str]]:
    """Each umask -> its pipeline's exit status, feature_store.yaml creations, workspace, and the stderr."""
    tmp_path = tmp_path_factory.mktemp("phi")
    history = tmp_path / "addresses.csv"
    history.write_text(HISTORY)
    bg = {}
    for year, geoid in ((2010, "990010003001"), (2020, "990010003011")):
        bg[year] = tmp_path / f"bg{year}.geojson"
        gpd.GeoDataFrame({"GEOID": [geoid]}, geometry=[shapely.box(-75, 39, -74, 40)],
                         crs=4269).to_file(bg[year])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(history),
                           str(bg[2010]), str(bg[2020]), *UMASKS], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    return {umask: (*report[umask], tmp_path / umask, done.stderr) for umask in UMASKS}


@pytest.mark.parametrize("umask", UMASKS)
def test_every_phi_file_is_private_whatever_the_umask(pipelines, umask):
    code, created, ws, stderr = pipelines[umask]
    assert code == 0, stderr

    # feature_store.yaml: only ever created through os.open with 0600, never open() + chmod.
    assert created and all(how == "os.open" and mode == 0o600 for how, mode in created), created

    phi = [p for tree in PHI_TREES for p in (ws / tree).rglob("*") if not p.is_symlink()]
    files = [p for p in phi if p.is_file()] + [ws / f for f in PHI_FILES]
    folders = [ws, *(p for p in ws.iterdir() if p.is_dir()), *(p for p in phi if p.is_dir())]
    # Each kind of PHI file was written, so the check below covers it.
    names = {p.relative_to(ws).parts[0] for p in files} | {p.name for p in files}
    assert {"published", "quarantine", "outputs", "frame.parquet", "report.json",
            "online_store.db", "feature_store.yaml"} <= names
    assert any(p.suffix == ".csv" and p.parent.name == "address_rejects" for p in files)
    assert {str(p.relative_to(ws)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
    assert {str(p.relative_to(ws)): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}


def test_a_workspace_folder_left_open_is_closed_on_first_use(tmp_path):
    (tmp_path / "ws" / "outputs").mkdir(parents=True)
    (tmp_path / "ws" / "outputs").chmod(0o755)
    outputs = Workspace(tmp_path / "ws").outputs
    assert _mode(outputs) == 0o700
    assert _mode(Workspace(tmp_path / "new").outputs.parent) == 0o700  # a root it creates, too


def test_an_existing_sqlite_store_left_open_is_closed(tmp_path):
    from feature_repo.serving.store import feature_store

    ws = Workspace(tmp_path / "ws")
    db = ws.feast / "online_store.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    feature_store(ws, profile="embedded")
    assert _mode(db) == 0o600 and _mode(ws.feast / "feature_store.yaml") == 0o600
