"""What a command and a training worker import before they do any work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def imported_after(statement: str) -> dict:
    code = (f"import sys, json\n{statement}\n"
            "import jsonschema\n"
            "checker = jsonschema.FormatChecker()\n"
            "print(json.dumps({'lark': 'lark' in sys.modules, 'pyplot': 'matplotlib.pyplot' in sys.modules,\n"
            "                  'iri': 'iri' in checker.checkers, 'uri': 'uri' in checker.checkers}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_command_line_skips_jsonschemas_iri_grammars_and_nothing_else():
    plain = imported_after("import jsonschema")
    if not plain["iri"]:
        pytest.skip("rfc3987-syntax is not installed here: nothing to skip")
    assert plain["lark"]
    cli = imported_after("import xnli_study.cli")
    assert not cli["lark"] and not cli["iri"]
    assert cli["uri"]  # the other format checkers are there
    # the grammar package itself still imports, and builds its checker where asked
    after = imported_after("import xnli_study.cli\nimport rfc3987_syntax\nassert rfc3987_syntax.is_valid_syntax('iri', 'http://a.b/c')")
    assert after["lark"]


def test_notebook_validation_works_without_them(tmp_path):
    code = ("import xnli_study.cli, nbformat\n"
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])\n"
            "nbformat.validate(nb)\n"
            "bad = nbformat.v4.new_notebook(); bad.cells = [{'cell_type': 'code'}]\n"
            "try:\n    nbformat.validate(bad)\nexcept nbformat.ValidationError:\n    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "refused"


def test_a_training_worker_does_not_import_pyplot():
    assert not imported_after("import xnli_study.worker")["pyplot"]


def test_the_command_freezes_its_objects_before_exit_and_exit_handlers_still_run():
    from xnli_study.environment import PROJECT_ROOT

    code = ("import atexit, gc, sys\n"
            "import xnli_study.cli as cli\n"
            "atexit.register(lambda: print('exit handler ran; frozen objects:', gc.get_freeze_count() > 0))\n"
            f"sys.argv = ['xnli-study', 'check', '--params', {str(PROJECT_ROOT / 'params' / 'smoke.yaml')!r}]\n"
            "sys.exit(cli.entry())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "valid (profile smoke" in proc.stdout
    assert proc.stdout.strip().endswith("exit handler ran; frozen objects: True")


def test_a_worker_freezes_its_objects_before_exit(tmp_path):
    code = ("import atexit, gc, runpy, sys\n"
            "atexit.register(lambda: print('frozen objects:', gc.get_freeze_count() > 0))\n"
            f"sys.argv = ['worker', '--params', {str(tmp_path / 'missing.yaml')!r}, '--run-dir', {str(tmp_path)!r},\n"
            "            '--stage', 'transfer', '--unit', 'none-seed0', '--report-units']\n"
            "runpy.run_module('xnli_study.worker', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1  # the params file is missing: the worker reports it and exits
    assert "missing.yaml" in proc.stdout
    assert proc.stdout.strip().endswith("frozen objects: True")
