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


@pytest.fixture(scope="module")
def executed(demo_run, tmp_path_factory):
    """coverage_gaps.ipynb executed on the session's demo workspace, as a temporary copy."""
    workspace, _ = demo_run
    folder = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(COVERAGE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(BACKEND_PROBE, metadata={"tags": ["probe"]}))
    env = {**os.environ, "SDOH_WORKSPACE": str(workspace.root),
           "MPLBACKEND": "Agg"}  # as on CI: the notebook must still render its figures
    client = NotebookClient(nb, km=_kernel_manager(folder), kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    nbformat.write(nb, folder / COVERAGE.name)  # for inspection; the repository copy is untouched
    return nb


@pytest.mark.slow
def test_coverage_notebook_runs_without_errors(executed):
    assert _errors(executed) == []


@pytest.mark.slow
@pytest.mark.parametrize("tag", ["ci-chart", "map"])
def test_coverage_notebook_renders_the_chart_and_map(executed, tag):
    assert _images(_tagged(executed, tag)) == 1


@pytest.mark.slow
def test_kernel_draws_with_a_non_interactive_agg_backend(executed):
    (output,) = _tagged(executed, "probe").outputs
    backend, agg = output["text"].split()
    assert agg == "True"
    assert backend.lower() in {"inline", "module://matplotlib_inline.backend_inline", "agg"}


def test_repository_copy_is_saved_with_its_figures():
    nb = nbformat.read(COVERAGE, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert _errors(nb) == []
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert _images(_tagged(nb, "ci-chart")) == 1 and _images(_tagged(nb, "map")) == 1
