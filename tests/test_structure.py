"""The package's shape: a one-way import graph, and one module that knows the run folder's layout."""

from __future__ import annotations

import ast
import graphlib
import json
from pathlib import Path

import pytest

from xnli_study import runfolder

PACKAGE = Path(__file__).resolve().parents[1] / "xnli_study"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.glob("*.py"))}


def _internal_imports(node: ast.AST) -> set[str]:
    """Modules of the package that ``node`` (an import statement) imports."""
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        return {node.module} if node.module else {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xnli_study"):
        rest = node.module.removeprefix("xnli_study").lstrip(".")
        return {rest} if rest else {alias.name for alias in node.names}
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("xnli_study.")}
    return set()


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level."""
    graph = {}
    for name, tree in _modules().items():
        deps = set()
        for node in tree.body:
            deps |= _internal_imports(node)
        graph[name] = deps - {"__init__"}
    return graph


def test_import_graph_has_no_cycle():
    graph = import_graph()
    assert set().union(*graph.values()) <= set(graph), "an import names a module that does not exist"
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert set(order) == set(graph)


def test_a_cycle_would_be_found():
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter({"pipeline": {"report"}, "report": {"pipeline"}}).static_order())


def test_no_module_imports_the_package_inside_a_function():
    hidden = []
    for name, tree in _modules().items():
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if _internal_imports(node):
                        hidden.append(f"{name}.{func.name}: {ast.unparse(node)}")
    assert hidden == []


def _string_literals(tree: ast.Module) -> list[str]:
    """String constants of a module, docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def _notebook_code(root: Path) -> list[str]:
    code = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        code += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return code


def test_run_folder_file_names_live_in_runfolder_only(root):
    names = runfolder.file_names() | {"tables", "figures", "cache", ".tmp", ".cache",
                                      runfolder.EMBEDDINGS_META}
    offenders = []
    for module, tree in _modules().items():
        if module == "runfolder":
            continue
        for text in _string_literals(tree):
            offenders += [f"{module}: {text!r}" for name in names if name in text.split("/") or text == name
                          or text.endswith("/" + name) or text.startswith(name + "/")]
    for code in _notebook_code(root):
        offenders += [f"notebook: {name}" for name in runfolder.file_names() if name in code]
    assert offenders == []


def test_outputs_readme_shows_the_layout(root):
    readme = (root / "outputs" / "README.md").read_text(encoding="utf-8")
    assert runfolder.layout_markdown() in readme, (
        "outputs/README.md is out of step with xnli_study/runfolder.py; paste the output of "
        "`python -m xnli_study.runfolder` into it")


def test_every_table_has_a_path_in_the_layout(tmp_path):
    folder = runfolder.RunFolder(tmp_path)
    for key, entry in runfolder.TABLES.items():
        assert folder.table(key) == tmp_path / "tables" / entry.path
    with pytest.raises(KeyError, match="unknown table 'acuracy'"):
        folder.table("acuracy")
    assert folder.model("sst2", 1, "intermediate") == tmp_path / "models" / "sst2" / "seed1" / "intermediate"
    assert folder.record("render") == tmp_path / "stages" / "render.json"
