"""The committed notebooks: clean, parameterised, in step with their py:percent twins."""

import ast

import jupytext
import nbformat
import pytest

from xnli_study.stages import NOTEBOOK_STAGES

NAMES = [s.notebook for s in NOTEBOOK_STAGES]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_clean_and_has_one_parameters_cell(root, name):
    nb = nbformat.read(root / "notebooks" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.metadata["kernelspec"]["name"] == "xnli-study"
    # one `name: type = value  # help` per line, JSON/YAML types only, nothing derived
    tree = ast.parse(tagged[0].source)
    assert tree.body and all(isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant)
                             for node in tree.body)
    assert all("#" in line for line in tagged[0].source.splitlines())
    assert {node.target.id for node in tree.body} == {"params_path", "run_dir", "recompute", "overrides",
                                                      "update_run_copy"}
    # the title comes first; the next cell says what the notebook needs (left out of the report)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "**Needs:**" in nb.cells[1].source and "hide-in-report" in nb.cells[1].metadata.get("tags", [])


@pytest.mark.parametrize("name", NAMES)
def test_py_twin_matches_the_notebook(root, name):
    nb = nbformat.read(root / "notebooks" / name, as_version=4)
    twin = jupytext.read(root / "notebooks" / name.replace(".ipynb", ".py"))
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in twin.cells]


@pytest.mark.parametrize("name", NAMES)
def test_papermill_reads_every_parameter_with_its_help(root, name):
    """papermill parses each line of the parameters cell (a line it cannot parse loses its help in
    `papermill --help-notebook`, with a warning on every run)."""
    from papermill.translators import PythonTranslator

    nb = nbformat.read(root / "notebooks" / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parsed = PythonTranslator.inspect(cell)
    assert [p.name for p in parsed] == [line.split(":")[0] for line in cell.source.splitlines()]
    assert all(p.help for p in parsed)
