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
from xnli_study.environment import ensure_kernel


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
    assert not alive(km)  # the client shut it down after the notebook
    assert warm.take() is None  # one kernel per start


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
