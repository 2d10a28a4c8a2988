"""The analyst notebooks run end to end on a fresh demo workspace and render their figures.

The kernel is a kernelspec written for this test into a temporary folder, so it runs this
interpreter (the project's venv) whatever kernels the machine has or lacks.
"""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
COVERAGE = NOTEBOOKS / "coverage_gaps.ipynb"
FAIRNESS = NOTEBOOKS / "fairness_audit.ipynb"
CHARTS = {COVERAGE: ["ci-chart", "heatmap", "map"], FAIRNESS: ["calibration-chart", "drift-chart"]}
CHART_CELLS = [(path, tag) for path, tags in CHARTS.items() for tag in tags]
BACKEND_PROBE = """\
import matplotlib, matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
probe = plt.figure()
print(matplotlib.get_backend(), isinstance(probe.canvas, FigureCanvasAgg))
plt.close(probe)
"""


def _kernel_manager(folder: Path) -> KernelManager:
    """A manager for a ``python3`` kernel that runs ``sys.executable``, found only in ``folder``."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _tagged(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _images(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"cell {i}: {out['ename']}: {out['evalue']}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"]


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") + out.get("data", {}).get("text/markdown", "")
                   for out in cell.get("outputs", []))


@pytest.fixture(scope="module")
def execute(demo_run, tmp_path_factory):
    """Run a notebook on the session's demo workspace, once, as a temporary copy."""
    workspace, _ = demo_run
    done = {}

    def run(path: Path) -> nbformat.NotebookNode:
        if path not in done:
            folder = tmp_path_factory.mktemp(path.stem)
            nb = nbformat.read(path, as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell(BACKEND_PROBE, metadata={"tags": ["probe"]}))
            env = {**os.environ, "SDOH_WORKSPACE": str(workspace.root),
                   "MPLBACKEND": "Agg"}  # as on CI: the notebook must still render its figures
            client = NotebookClient(nb, km=_kernel_manager(folder), kernel_name="python3",
                                    timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
            client.execute(env=env)
            nbformat.write(nb, folder / path.name)  # for inspection; the repository copy is untouched
            done[path] = nb
        return done[path]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("path", list(CHARTS), ids=lambda p: p.stem)
def test_notebook_runs_without_errors(execute, path):
    assert _errors(execute(path)) == []


@pytest.mark.slow
@pytest.mark.parametrize(("path", "tag"), CHART_CELLS, ids=lambda v: getattr(v, "stem", v))
def test_notebook_renders_its_charts_and_maps(execute, path, tag):
    assert _images(_tagged(execute(path), tag)) == 1


@pytest.mark.slow
def test_one_cell_answers(execute):
    adi = _text(_tagged(execute(COVERAGE), "adi-answer"))
    assert "**race_ethnicity**" in adi and "times the reference" in adi
    drift = _text(_tagged(execute(FAIRNESS), "drift"))
    assert drift.startswith("equalized_odds_difference ") and " from 0." in drift


@pytest.mark.slow
@pytest.mark.parametrize("path", list(CHARTS), ids=lambda p: p.stem)
def test_kernel_draws_with_a_non_interactive_agg_backend(execute, path):
    (output,) = _tagged(execute(path), "probe").outputs
    backend, agg = output["text"].split()
    assert agg == "True"
    assert backend.lower() in {"inline", "module://matplotlib_inline.backend_inline", "agg"}


@pytest.mark.parametrize("path", list(CHARTS), ids=lambda p: p.stem)
def test_repository_copy_is_saved_with_its_figures(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert _errors(nb) == []
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert all(_images(_tagged(nb, tag)) == 1 for tag in CHARTS[path])
