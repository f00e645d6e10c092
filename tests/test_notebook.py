"""examples/tutorial.ipynb: committed without outputs, and run top to bottom by a real Jupyter
kernel (nbclient driving ipykernel's python3 kernel, the `notebook` extra). No cell may raise,
the cells tagged "graph" must show SVG and those tagged "plot" a PNG. Skips only where
nbclient is not installed; a missing ipykernel or Graphviz `dot` fails, saying what to install.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
INSTALL = 'pip install -e ".[notebook]"'
# Run after the tutorial, in the same kernel: which interpreter and which tinygrad_rnn it used.
# Import name -> distribution, for the notebook's imports that are not the name they install by.
DISTRIBUTIONS = {"sklearn": "scikit-learn"}
PROBE = ("import json, sys, tinygrad_rnn\n"
         "print(json.dumps({'executable': sys.executable, 'package': tinygrad_rnn.__file__}))")


def _code_cells(nb: Any) -> list[tuple[int, Any]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def _tagged(nb: Any, tag: str) -> list[tuple[int, Any]]:
    return [(i, c) for i, c in _code_cells(nb) if tag in c.get("metadata", {}).get("tags", [])]


def _mime(cell: Any) -> set[str]:
    return {kind for out in cell["outputs"] for kind in out.get("data", {})}


def execute(nb: Any) -> Any:
    """Run `nb` in place with a fresh python3 kernel started in the repository root (so it
    imports this checkout's tinygrad_rnn); raises CellExecutionError at the first raising cell."""
    nbclient = pytest.importorskip(
        "nbclient", reason=f"running the tutorial needs nbclient and ipykernel: {INSTALL}")
    if importlib.util.find_spec("ipykernel") is None:
        pytest.fail(f"nbclient is installed but ipykernel is not, so there is no python3 kernel "
                    f"to run the tutorial: {INSTALL}")
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=120,
                                     resources={"metadata": {"path": str(ROOT)}})
    return client.execute()


@pytest.fixture(scope="module")
def executed() -> dict[str, Any]:
    """The tutorial and the probe cell, executed once; the error if a cell raised."""
    nbformat = pytest.importorskip("nbformat", reason=f"needs nbformat (with nbclient): {INSTALL}")
    if shutil.which("dot") is None:
        pytest.fail("the tutorial draws graphs, which needs Graphviz's dot program: "
                    "apt-get install graphviz (or brew install graphviz)")
    before = NOTEBOOK.read_bytes()
    nb = nbformat.reads(before.decode("utf-8"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    failures = pytest.importorskip("nbclient.exceptions", reason=f"needs nbclient: {INSTALL}")
    error = None
    try:
        execute(nb)
    except (failures.CellExecutionError, failures.DeadKernelError,
            failures.CellTimeoutError) as err:
        error = err
    return {"nb": nb, "error": error, "before": before}


def _ran(executed: dict[str, Any]) -> Any:
    if executed["error"] is not None:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(executed["error"]))  # the traceback's colours
        pytest.fail(f"the tutorial stopped at a raising cell (or its kernel died):\n{plain}")
    return executed["nb"]


def test_the_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = _code_cells(nb)
    assert cells, "examples/tutorial.ipynb has no code cell"
    dirty = [i for i, c in cells if c["outputs"] or c["execution_count"] is not None
             or "execution" in c.get("metadata", {})]  # nbclient's timings
    assert not dirty, (f"examples/tutorial.ipynb: cells {dirty} hold outputs, counts or timings; "
                       f"clear them (Jupyter: Edit > Clear Outputs of All Cells, or the command "
                       f"in docs/tutorial.md) and commit again")
    assert "widgets" not in nb["metadata"], "examples/tutorial.ipynb holds saved widget state"


def test_the_notebook_tags_its_graph_and_plot_cells():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    graphs = ["".join(c["source"]) for _, c in _tagged(nb, "graph")]
    assert len(graphs) == 2, "expected two cells tagged 'graph': the unrolled net and its BPTT"
    assert all(src.splitlines()[-1].startswith("tg.draw_graph(") for src in graphs), graphs
    assert "create_graph=True" in graphs[1]
    assert len(_tagged(nb, "plot")) == 2, "expected two cells tagged 'plot'"


def test_the_notebook_extra_pins_the_kernel_and_brings_what_the_notebook_imports():
    tomllib = pytest.importorskip("tomllib")  # the standard library's from Python 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = project["optional-dependencies"]["notebook"]
    pins = {req.split("==")[0]: req for req in extra if "==" in req}
    assert set(pins) >= {"nbclient", "nbformat", "ipykernel", "ipywidgets"}, extra
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    imported = set()
    for _, cell in _code_cells(nb):
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"tinygrad_rnn"}
    provided = {DISTRIBUTIONS.get(name, name) for name in third_party}
    core = {"numpy", "graphviz", "tqdm"}  # the package's own dependencies
    missing = provided - core - {req.split("==")[0] for req in extra}
    assert not missing, f"the notebook imports {sorted(missing)}, which the notebook extra lacks"


def test_every_cell_runs_in_a_real_kernel(executed):
    nb = _ran(executed)
    for i, cell in _code_cells(nb):
        assert cell["execution_count"] is not None, f"cell {i} did not run"
        errors = [out for out in cell["outputs"] if out["output_type"] == "error"]
        assert not errors, f"cell {i} raised {errors[0]['ename']}: {errors[0]['evalue']}"


def test_no_cell_prints_a_warning(executed):
    nb = _ran(executed)
    for i, cell in _code_cells(nb):
        text = "".join(out.get("text", "") for out in cell["outputs"]
                       if out["output_type"] == "stream")
        assert "Warning" not in text, f"cell {i} printed a warning:\n{text}"


def test_the_graph_cells_show_svg(executed):
    nb = _ran(executed)
    svgs = []
    for i, cell in _tagged(nb, "graph"):
        assert "image/svg+xml" in _mime(cell), f"graph cell {i} showed {sorted(_mime(cell))}"
        svgs += [out["data"]["image/svg+xml"] for out in cell["outputs"]
                 if "image/svg+xml" in out.get("data", {})]
    assert len(svgs) == 2
    for svg in svgs:  # parameters by name, one cluster per time step
        assert svg.lstrip().startswith(("<?xml", "<svg", "<!--")) and "</svg>" in svg
        assert "rnn.cell.u" in svg and "t=0" in svg and "t=2" in svg
    assert ">grad<" not in svgs[0] and ">grad<" in svgs[1]  # the derived BPTT's own clusters


def test_the_plot_cells_show_png(executed):
    nb = _ran(executed)
    for i, cell in _tagged(nb, "plot"):
        assert "image/png" in _mime(cell), f"plot cell {i} showed {sorted(_mime(cell))}"


def test_the_kernel_runs_this_interpreter_and_this_checkout(executed):
    nb = _ran(executed)
    text = "".join(out.get("text", "") for out in nb.cells[-1]["outputs"])
    seen = json.loads(text)
    assert os.path.realpath(seen["executable"]) == os.path.realpath(sys.executable)
    assert Path(seen["package"]).resolve() == (ROOT / "tinygrad_rnn" / "__init__.py").resolve()


def test_running_leaves_the_committed_file_unchanged(executed):
    _ran(executed)
    assert NOTEBOOK.read_bytes() == executed["before"]


def test_a_raising_cell_fails_the_run():
    nbformat = pytest.importorskip("nbformat", reason=f"needs nbformat (with nbclient): {INSTALL}")
    nbclient = pytest.importorskip("nbclient", reason=f"needs nbclient: {INSTALL}")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('planted failure')"),
        nbformat.v4.new_code_cell("y = 2"),
    ])
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="planted failure"):
        execute(nb)
    assert nb.cells[0].execution_count == 1 and nb.cells[2].execution_count is None
