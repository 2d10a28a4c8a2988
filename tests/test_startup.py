"""Start-up: what importing loads and changes, and a console free of dependencies' warnings.

Each check runs in a fresh interpreter (what was imported before cannot hide anything), with
PYTHONPATH set to this checkout so that the child imports this code, not an installed copy.
Nothing here measures time: the import boundaries are what keeps start-up fast.
"""

import logging
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ingestion.core.known_warnings import KNOWN_WARNINGS, dropped, ignored, is_known

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sdoh_sources", "ingestion", "feature_repo")


def _python(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize(("statement", "unloaded"), [
    ("import ingestion.cli", ["great_expectations", "feast", "pandas", "geopandas"]),
    ("import feature_repo, ingestion", ["great_expectations", "feast", "pandas"]),
    ("from feature_repo import feature_store, online_features, write_training_frame",
     ["great_expectations"]),
    ("import ingestion.gate.publish, ingestion.geo.linking, ingestion.core.atomic", ["great_expectations"]),
])
def test_heavy_libraries_load_only_on_the_path_that_needs_them(statement, unloaded):
    check = f"{statement}\nimport sys\nprint(sorted(m for m in {unloaded!r} if m in sys.modules))"
    done = _python("-c", check)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{statement} loaded {done.stdout.strip()}"


def test_validating_still_loads_great_expectations():
    done = _python("-c", "import sys, ingestion.gate.validation as v; v._gx(); "
                         "print('great_expectations' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


_SIDE_EFFECTS = textwrap.dedent('''
    import ast, importlib, os, sys, warnings
    from pathlib import Path

    root, packages = Path(sys.argv[1]), sys.argv[2:]
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    modules = [".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
               for p in files]
    modules = [m for m in modules if not m.endswith("__main__")]  # runs the command
    third_party = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            third_party |= {n for n in names if n and n.split(".")[0] not in packages}
    for name in sorted(third_party):  # their own import-time changes are not ours
        try:
            importlib.import_module(name)
        except Exception:
            pass
    environ, filters = dict(os.environ), list(warnings.filters)
    for name in modules:
        importlib.import_module(name)
    changed = sorted(k for k in set(environ) | set(os.environ) if environ.get(k) != os.environ.get(k))
    added = [f for f in warnings.filters if f not in filters]
    print(len(modules), changed, added)
''')


def test_importing_any_project_module_changes_neither_environment_nor_warning_filters():
    done = _python("-c", _SIDE_EFFECTS, str(ROOT), *PACKAGES)
    assert done.returncode == 0, done.stderr
    count, changes = done.stdout.strip().split(" ", 1)
    assert int(count) > 50  # every module was imported
    assert changes == "[] []", f"importing changed (environment, warning filters): {changes}"


def test_commands_print_no_warnings(tmp_path):
    adi = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    adi.write_text("FIPS,ADI_NATRANK,ADI_STATERNK\n100010401001,73,6\n100010401002,12,2\n")
    ws = str(tmp_path / "ws")
    commands = [  # help; a validated publish (imports GX); a Feast command on what it published
        ["--help"],
        ["ingest", "source", "adi", str(adi), "--available-from", "2022-09-01", "--workspace", ws],
        ["catalog", "--workspace", ws],
    ]
    for args in commands:
        done = _python("-W", "default", "-m", "ingestion.cli", *args)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, f"sdoh {' '.join(args)}:\n{done.stderr}"
    assert "adi_state_decile" in done.stdout  # the catalog did read what was published


SAMPLES = [  # the warnings as the dependencies word them
    ("module 'sre_constants' is deprecated", DeprecationWarning),
    ("module 'sre_parse' is deprecated", DeprecationWarning),
    ("fetch_arrow_table() is deprecated, use to_arrow_table() instead.", DeprecationWarning),
    ("The spark offline store is an experimental feature in alpha development.", RuntimeWarning),
    ("The spark data source API is an experimental feature in alpha development.", RuntimeWarning),
    ("unclosed file <_io.BufferedRandom name='/tmp/feast_metrics_x1/counter_7.db'>", ResourceWarning),
]


def test_every_known_warning_has_a_sample():
    for pattern, category in KNOWN_WARNINGS:
        assert any(c is category and re.match(pattern, m) for m, c in SAMPLES), pattern


@pytest.mark.parametrize(("message", "category"), SAMPLES)
def test_known_warnings_are_ignored_around_a_call_and_filters_restored(message, category):
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ignored():
            warnings.warn(message, category, stacklevel=1)
        warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == [message]  # only the call outside the block
    assert warnings.filters == before


@pytest.mark.parametrize(("message", "category", "known"), [
    ("module 'sre_constants' is deprecated", UserWarning, False),  # same text, other category
    ("a module 'sre_parse' is deprecated", DeprecationWarning, False),  # matched from the start
    ("fetch_arrow_table() is deprecated", FutureWarning, False),  # another category
])
def test_known_means_same_message_start_and_category(message, category, known):
    assert is_known(message, category) is known


@pytest.mark.parametrize("stale_capture", [False, True])
def test_a_command_drops_known_warnings_and_logs_any_other(caplog, stale_capture):
    # stale_capture: a library called logging.captureWarnings(True) earlier and the warnings
    # hook was reset since (as pytest does around each test), so logging's capture is a no-op.
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        if stale_capture:
            shown_by = warnings.showwarning
            logging.captureWarnings(True)
            warnings.showwarning = shown_by
        with caplog.at_level(logging.WARNING, logger="py.warnings"), dropped():
            warnings.warn("module 'sre_constants' is deprecated", DeprecationWarning, stacklevel=1)
            warnings.warn("the rows changed", UserWarning, stacklevel=1)
        if stale_capture:
            logging.captureWarnings(False)
    logged = [r.getMessage() for r in caplog.records if r.name == "py.warnings"]
    assert len(logged) == 1 and "UserWarning: the rows changed" in logged[0]


def test_a_command_logs_through_tqdm_so_lines_do_not_cut_progress_bars():
    check = textwrap.dedent('''
        import logging
        from ingestion.cli import sdoh
        ctx = sdoh.make_context("sdoh", ["catalog"])
        with ctx:
            ctx.invoke(sdoh.callback, verbose=False)
            during = [type(h).__name__ for h in logging.root.handlers]
        print(during, [type(h).__name__ for h in logging.root.handlers])
    ''')
    done = _python("-c", check)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['_TqdmLoggingHandler'] ['StreamHandler']"
