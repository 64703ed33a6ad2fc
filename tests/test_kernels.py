"""The next notebook's kernel, started and warmed up while a stage runs (xnli_study.kernels)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import nbformat
import papermill as pm
import pytest

from xnli_study import kernels
from xnli_study.environment import PROJECT_ROOT as ROOT, ensure_kernel


def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys\nwarmed = 'json' in sys.modules and WARM"),
                nbformat.v4.new_code_cell("print(warmed)")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def alive(km) -> bool:
    return asyncio.run(km.is_alive())


def test_a_warmed_kernel_runs_the_next_notebook_as_a_fresh_one_would_and_is_shut_down(tmp_path):
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="import json\nWARM = True")
    warm.start()
    km = warm.take()
    assert km is not None and alive(km)
    with kernels.handed_over():
        out = pm.execute_notebook(str(notebook(tmp_path)), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                                  cwd=str(tmp_path), progress_bar=False, km=km)
    code = [c for c in out.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2]  # the warm-up left no trace in the history
    assert code[1].outputs[0]["text"].strip() == "True"  # it ran in the warmed kernel
    kernels.wait_for_shutdowns()
    assert not alive(km)  # the client had it shut down after the notebook
    assert warm.take() is None  # one kernel per start


def test_a_handed_over_kernel_shuts_down_gracefully_after_its_notebook(tmp_path):
    # gracefully: the kernel's exit handlers run (a tracker's final upload, for one), where a kill would skip them
    goodbye = tmp_path / "goodbye.txt"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import atexit, pathlib\natexit.register(pathlib.Path({str(goodbye)!r}).write_text, 'bye')")]
    nbformat.write(nb, tmp_path / "exit.ipynb")
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="x = 1")
    warm.start()
    km = warm.take()
    with kernels.handed_over():
        pm.execute_notebook(str(tmp_path / "exit.ipynb"), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                            cwd=str(tmp_path), progress_bar=False, km=km)
    assert id(km) in kernels._closing  # shutting down in the background: the caller went on at once
    kernels.shutdown(km)  # what the stage loop calls on every path: no kill while it shuts down
    kernels.wait_for_shutdowns()
    assert not alive(km)
    assert goodbye.read_text() == "bye"
    assert not kernels._closing


def test_a_failed_warm_up_leaves_no_kernel_and_the_notebook_starts_its_own(tmp_path):
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="raise RuntimeError('no')")
    warm.start()
    assert warm.take() is None
    with pytest.raises(pm.PapermillExecutionError, match="WARM"):  # a fresh kernel: no WARM there
        pm.execute_notebook(str(notebook(tmp_path)), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                            cwd=str(tmp_path), progress_bar=False)


def test_a_kernel_no_notebook_took_is_shut_down(tmp_path):
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="x = 1")
    warm.start()
    warm._thread.join(120)
    km = warm._km
    assert km is not None and alive(km)
    warm.close()
    assert not alive(km)


def test_a_warmed_kernel_that_died_while_waiting_is_not_handed_over(tmp_path):
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="x = 1")
    warm.start()
    warm._thread.join(120)
    os.kill(warm._km.provisioner.pid, signal.SIGKILL)  # e.g. the out-of-memory killer
    time.sleep(0.5)
    assert warm.take() is None  # the notebook starts a kernel of its own


def test_a_kernel_is_shut_down_from_code_that_runs_an_event_loop(tmp_path):
    """As when the study runs inside a notebook or an async test runner."""
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="x = 1")
    warm.start()
    km = warm.take()
    assert km is not None

    async def inside_a_loop():
        kernels.shutdown(km)

    asyncio.run(inside_a_loop())
    assert not alive(km)


def test_each_start_runs_the_code_of_the_notebook_it_warms(tmp_path):
    warm = kernels.WarmKernel(ensure_kernel(), tmp_path, code="import json\nWARM = 'default'")
    warm.start("import json\nWARM = 'for this notebook'")
    km = warm.take()
    with kernels.handed_over():
        out = pm.execute_notebook(str(notebook(tmp_path)), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                                  cwd=str(tmp_path), progress_bar=False, km=km)
    assert out.cells[1].outputs[0]["text"].strip() == "for this notebook"
    kernels.wait_for_shutdowns()


def test_model_machinery_is_imported_ahead_only_where_the_notebook_loads_a_model(tmp_path):
    from xnli_study.config import load_params
    from xnli_study.models import tiny_folder
    from xnli_study.pipeline import warm_up_code
    from xnli_study.stages import STAGE_BY_NAME

    def loads(stage, *overrides):
        config = load_params(ROOT / "params" / "smoke.yaml", [f"cache_dir={tmp_path}", *overrides])
        code = warm_up_code(config, STAGE_BY_NAME[stage])
        assert code.startswith(kernels.WARM_UP)
        return kernels.MODELS_WARM_UP in code

    # the smoke profile trains side by side: its training notebooks' kernels load no model
    assert [loads(s) for s in ("intermediate", "transfer", "alignment", "report")] == [False, False, True, False]
    assert loads("intermediate", "distributed.unit_processes=1") and loads("transfer", "distributed.unit_processes=1")
    assert not loads("transfer", "distributed.unit_processes=1", "distributed.processes=2")  # launched
    assert loads("data")  # no P in this cache yet: the data stage pretrains it
    tiny_folder(load_params(ROOT / "params" / "smoke.yaml", [f"cache_dir={tmp_path}"])).mkdir(parents=True)
    assert not loads("data")


def test_the_first_notebook_to_run_is_the_one_warmed_first(tmp_path, minimal_run):
    from xnli_study.config import load_params
    from xnli_study.pipeline import _first_to_run
    from xnli_study.runfolder import RunFolder

    params, run_dir = minimal_run
    config = load_params(params)
    every = ["data", "intermediate", "transfer", "alignment", "report", "render"]
    assert _first_to_run(config, RunFolder(tmp_path / "empty"), every, force=False).name == "data"
    assert _first_to_run(config, RunFolder(tmp_path / "empty"), ["alignment", "render"], force=False).name == "alignment"
    assert _first_to_run(config, RunFolder(run_dir), every, force=False) is None  # complete: nothing runs
    assert _first_to_run(config, RunFolder(run_dir), ["transfer", "report"], force=True).name == "transfer"
    changed = load_params(params, ["alignment.max_sentences=24"])
    assert _first_to_run(changed, RunFolder(run_dir), every, force=False).name == "alignment"


def test_kernels_ahead_are_warmed_one_per_notebook_and_the_untaken_shut_down(tmp_path):
    ahead = kernels.KernelsAhead(ensure_kernel(), tmp_path)
    ahead.start("first", "import json\nWARM = 'first'")
    ahead.start("second", "import json\nWARM = 'second'")
    ahead.start("first", "import json\nWARM = 'again'")  # already warming: kept as it is
    assert ahead.take("third") is None
    km = ahead.take("first")
    with kernels.handed_over():
        out = pm.execute_notebook(str(notebook(tmp_path)), str(tmp_path / "out.ipynb"), kernel_name=ensure_kernel(),
                                  cwd=str(tmp_path), progress_bar=False, km=km)
    assert out.cells[1].outputs[0]["text"].strip() == "first"
    assert ahead.take("first") is None  # taken once
    waiting = ahead._warm["second"]
    waiting._thread.join(120)
    second = waiting._km
    assert second is not None and alive(second)
    ahead.close()
    assert not alive(second)
    kernels.wait_for_shutdowns()
