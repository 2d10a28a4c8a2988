"""Publishes are all or nothing: a publish killed (SIGKILL) at any point never serves a mix.

Each case runs a publish in a child process that kills itself right after its Nth rename, hard link or
symlink (os.replace, os.rename, os.link, os.symlink are wrapped in that child only), for every
N up to the number a whole publish makes. After each kill the readers (pandas/pyarrow through
the folder, DuckDB through `Workspace.published_glob`) see the whole old version or the whole
new one; the next publish completes and leaves no staging, unfinished version or hidden link.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import great_expectations as gx
import pandas as pd
import pytest
from spec_frames import valid_frame

from ingestion.core.datasets import adi_spec
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish, published_runs, read_published

ROOT = Path(__file__).resolve().parents[1]
SPEC = adi_spec()
# One row per state: four partition files <vintage>/<state>.parquet.
GEOIDS = ["100010001001", "110010001001", "240010001001", "510010001001"]
TOUCHED = ["100010001001", "240010001001", "510010001001"]  # the new publish leaves 11 alone
OLD, NEW, NEXT = 10.0, 20.0, 30.0

# A child process that imports once, then for each kill point copies the template workspace
# and forks a publisher of the new rows that SIGKILLs itself right after its Nth rename, hard
# link or symlink (0: never; it then reports how many calls a whole publish makes), or inside
# validation. argv: template workspace, parquet file of the new rows, "renames" or
# "validation", output folder (one workspace per kill point). Prints {N: outcome} as JSON.
CHILD = r"""
import json, os, shutil, signal, sys, traceback
import pandas as pd
import ingestion.gate.publish
from ingestion.core.datasets import adi_spec
from ingestion.core.workspace import Workspace
from ingestion.gate.validation import validate

template, rows, target, out = sys.argv[1:5]
frame = pd.read_parquet(rows)
# One context for every fork, its checkpoint registered (and GX's lazy imports done) here once:
# each fork still validates. A fork killed in validation needs none.
context = None
if target == "renames":
    import great_expectations as gx
    context = gx.get_context(mode="ephemeral")
    validate(frame, adi_spec(), context=context)

def publish_and_die(kill_at, folder):
    calls = [0]
    def counted(real):
        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return call
    if target == "validation":
        ingestion.gate.publish.validate = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    else:
        for name in ("replace", "rename", "link", "symlink"):
            setattr(os, name, counted(getattr(os, name)))
    ingestion.gate.publish.publish(frame, adi_spec(), Workspace(folder), context=context)
    return calls[0]

def fork(kill_at):
    folder = os.path.join(out, str(kill_at))
    shutil.copytree(template, folder, symlinks=True)
    pid = os.fork()
    if pid == 0:
        try:
            calls = publish_and_die(kill_at, folder)
            with open(os.path.join(out, "calls"), "w") as handle:
                handle.write(str(calls))
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    status = os.waitpid(pid, 0)[1]
    return "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL \
        else f"exit {os.waitstatus_to_exitcode(status)}"

outcomes = {0: fork(0)}
if target == "renames":
    with open(os.path.join(out, "calls")) as handle:
        n_calls = int(handle.read())
    outcomes.update({n: fork(n) for n in range(1, n_calls + 1)})
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def context():
    return gx.get_context(mode="ephemeral")


def _rows(value: float, geoids: list[str]) -> pd.DataFrame:
    df = valid_frame(SPEC, len(GEOIDS))
    df["block_group_geoid"] = GEOIDS
    df["adi_national_rank"] = value
    return df[df["block_group_geoid"].isin(geoids)].reset_index(drop=True)


def _kill_runs(template: Workspace, rows: Path, tmp_path: Path,
               target: str = "renames") -> dict[int, tuple[str, Workspace]]:
    """Each kill point's outcome and the workspace it left (see CHILD)."""
    out = tmp_path / "runs"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(template.root), str(rows), target,
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout.splitlines()[-1])
    return {int(n): (outcome, Workspace(out / n)) for n, outcome in outcomes.items()}


def _served(ws: Workspace) -> list[dict[str, float]]:
    """What each reader sees: GEOID -> rank, through pandas and through DuckDB's glob."""
    views = [read_published(SPEC, ws),
             pd.read_parquet(ws.published_dir(SPEC.name)),
             duckdb.execute("SELECT * FROM read_parquet(?)", [ws.published_glob(SPEC.name)]).df()]
    return [dict(zip(v["block_group_geoid"], v["adi_national_rank"], strict=True)) for v in views]


def _old_or_new(seen: dict[str, float]) -> str:
    old = dict.fromkeys(GEOIDS, OLD)
    new = {**old, **dict.fromkeys(TOUCHED, NEW)}
    assert seen in (old, new), f"a mix of versions is served: {seen}"
    return "old" if seen == old else "new"


def _leftovers(ws: Workspace) -> list[str]:
    """Anything a finished publish should not leave: run folders, hidden links, extra versions."""
    staged = [p for p in ws.staging.rglob("*") if not p.name.endswith(".lock")]
    hidden = [p for p in ws.published_dir(SPEC.name).parent.iterdir()
              if p.name.startswith(".") and p.name != ".versions"]
    versions = ws.published_dir(SPEC.name).parent / ".versions" / SPEC.name
    kept = {p.name for p in versions.iterdir() if not p.is_symlink()}
    extra = kept - set(published_runs(SPEC.name, ws))
    return sorted(map(str, [*staged, *hidden])) + sorted(extra)


def _workspace(tmp_path: Path, context, layout: str) -> Workspace:
    ws = Workspace(tmp_path / "template")
    publish(_rows(OLD, GEOIDS), SPEC, ws, context=context)
    if layout == "plain folder":  # as written before versions: a real folder of partitions
        link = ws.published_dir(SPEC.name)
        version = link.resolve()
        link.unlink()
        shutil.copytree(version, link)
        shutil.rmtree(version.parent.parent)
    return ws


@pytest.mark.parametrize("layout", ["versioned", "plain folder"])
def test_a_publish_killed_at_any_rename_serves_old_or_new_never_a_mix(tmp_path, context, layout):
    rows = tmp_path / "new.parquet"
    _rows(NEW, TOUCHED).to_parquet(rows)
    runs = _kill_runs(_workspace(tmp_path, context, layout), rows, tmp_path)
    whole, ws = runs.pop(0)
    assert whole == "exit 0" and _served(ws)[0] == {**dict.fromkeys(GEOIDS, OLD),
                                                     **dict.fromkeys(TOUCHED, NEW)}
    assert len(runs) >= 8  # 3 staged files, 3 moved in, 1 hard link, the links swapped
    seen = []
    for kill_at, (outcome, ws) in runs.items():
        assert outcome == "killed", kill_at
        if ws.is_published(SPEC.name):
            views = {_old_or_new(view) for view in _served(ws)}
            assert len(views) == 1, (kill_at, views)
            seen += views
        else:  # only between the two renames that turn a plain folder into a link
            assert layout == "plain folder", kill_at
            seen.append("none")
        result = publish(_rows(NEXT, GEOIDS), SPEC, ws, context=context)
        assert _served(ws) == [dict.fromkeys(GEOIDS, NEXT)] * 3, kill_at
        assert result.n_rows == len(GEOIDS)
        assert _leftovers(ws) == [], kill_at
    # Killed before the swap: the old version; after it: the new one.
    first_new = seen.index("new")
    assert set(seen[:first_new]) <= {"old", "none"} and set(seen[first_new:]) == {"new"}
    assert seen.count("none") == (layout == "plain folder")


def test_a_publish_killed_in_validation_leaves_no_staging_after_the_next_run(tmp_path, context):
    rows = tmp_path / "new.parquet"
    _rows(NEW, TOUCHED).to_parquet(rows)
    ((outcome, ws),) = _kill_runs(_workspace(tmp_path, context, "versioned"), rows, tmp_path,
                                  "validation").values()
    assert outcome == "killed"
    assert len(list(ws.staging.rglob("*.parquet"))) == len(TOUCHED)  # the killed run's copy
    assert _served(ws) == [dict.fromkeys(GEOIDS, OLD)] * 3

    publish(_rows(NEXT, ["110010001001"]), SPEC, ws, context=context)

    assert _leftovers(ws) == []
    assert list(ws.staging.rglob("*.parquet")) == []
    assert _served(ws)[0] == {**dict.fromkeys(GEOIDS, OLD), "110010001001": NEXT}


def test_staging_of_other_datasets_goes_unless_a_publish_holds_it(tmp_path, context):
    import fcntl

    ws = Workspace(tmp_path / "ws")
    dead = ws.staging / "acs_tract" / "20260101T000000_000000Z"
    legacy = ws.staging / "svi_tract_state-20260101T000000_000000Z"  # before per-dataset folders
    busy = ws.staging / "acs_county" / "20260101T000000_000000Z"
    for folder in (dead, legacy, busy):
        folder.mkdir(parents=True)
        (folder / "part.parquet").write_bytes(b"x")
    with open(ws.staging / ".acs_county.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # a publish of acs_county in progress
        publish(_rows(OLD, GEOIDS), SPEC, ws, context=context)
    assert not dead.exists() and not legacy.exists()
    assert (busy / "part.parquet").exists()


def test_publish_keeps_the_served_and_the_previous_version(tmp_path, context):
    ws = Workspace(tmp_path / "ws")
    runs = [publish(_rows(v, GEOIDS), SPEC, ws, context=context).run_id for v in (1.0, 2.0, 3.0)]
    assert published_runs(SPEC.name, ws) == [runs[2], runs[1]]
    versions = ws.published_dir(SPEC.name).parent / ".versions" / SPEC.name
    assert sorted(p.name for p in versions.iterdir() if not p.is_symlink()) == sorted(runs[1:])
    # A reader that resolved the link before the swap still reads the whole previous version.
    previous = versions / runs[1]
    assert set(pd.read_parquet(previous)["adi_national_rank"]) == {2.0}
    # Untouched partitions are hard links of the served files, not copies.
    publish(_rows(4.0, ["100010001001"]), SPEC, ws, context=context)
    served = ws.published_dir(SPEC.name).resolve()
    untouched = next(served.glob("*/11.parquet"))
    assert untouched.stat().st_ino == (versions / runs[2] / untouched.relative_to(served)).stat().st_ino


@pytest.mark.parametrize("run_id", ["../x", ".hidden", "a/b", "", "x" * 101])
def test_publish_refuses_run_ids_that_are_not_one_plain_name(tmp_path, run_id):
    with pytest.raises(ValueError, match="run_id"):
        publish(_rows(OLD, GEOIDS), SPEC, Workspace(tmp_path / "ws"), run_id=run_id)
