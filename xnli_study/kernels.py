"""A notebook kernel started ahead of its stage, with the package already imported.

A stage notebook's kernel spends seconds starting and importing the package (torch, transformers,
pandas, matplotlib) before its first cell does any work. While one stage runs, ``xnli-study run``
starts the kernel of the next one in the background and imports there what every stage notebook
imports (silently, outside the kernel's history: the executed notebook is the same, cell counts
included); papermill then executes the next notebook in that kernel. Any failure of the warm-up
only means the next notebook starts its own kernel, as it would without this. Every kernel started
here is shut down by this process, and ends by itself if this process is killed (the kernel
watches its parent, as every kernel Jupyter starts does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path
from typing import Iterator

log = logging.getLogger("xnli_study")

#: what the stage notebooks' first cell imports, run in a kernel before its notebook
WARM_UP = ("import xnli_study.study, xnli_study.plots, xnli_study.narrative, xnli_study.stages, "
           "xnli_study.environment")
#: transformers' model machinery (3 s to import), for a notebook that loads a model in its own kernel
MODELS_WARM_UP = "import transformers.modeling_utils"
#: seconds a warm-up may take before the next notebook starts a kernel of its own instead
TIMEOUT_S = 120


class WarmKernel:
    """At most one kernel being started, or started and waiting, for the next notebook."""

    def __init__(self, kernel_name: str, cwd: Path, code: str = WARM_UP):
        self.kernel_name, self.cwd, self.code = kernel_name, Path(cwd).resolve(), code
        self._thread: threading.Thread | None = None
        self._km = None
        self._error: str | None = None
        self._closed = False
        self._lock = threading.Lock()  # between the starting thread handing its kernel over and close()

    def start(self, code: str | None = None) -> None:
        """Begin starting a kernel in the background that runs ``code`` (default: the one given
        at construction) before it is handed over; once: a kernel already there is kept."""
        if self._thread is None and self._km is None and not self._closed:
            self._thread = threading.Thread(target=self._warm, args=(code or self.code,), daemon=True)
            self._thread.start()

    def _warm(self, code: str) -> None:
        from jupyter_client import AsyncKernelManager

        km = AsyncKernelManager(kernel_name=self.kernel_name)

        async def go() -> str:
            # as nbclient starts a kernel: no IPython history written to the user's profile
            await km.start_kernel(cwd=str(self.cwd), extra_arguments=["--HistoryManager.hist_file=:memory:"])
            client = km.client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=TIMEOUT_S)
                msg_id = client.execute(code, silent=True, store_history=False)
                while True:
                    reply = await client.get_shell_msg(timeout=TIMEOUT_S)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        return reply["content"]["status"]
            finally:
                client.stop_channels()

        try:
            status = asyncio.run(go())
            if status != "ok":
                raise RuntimeError(f"the warm-up import ended with status {status}")
        except Exception as err:  # noqa: BLE001 - the next notebook starts its own kernel instead
            self._error = f"{type(err).__name__}: {err}"
            shutdown(km)
            return
        with self._lock:
            keep = not self._closed
            if keep:
                self._km = km
        if not keep:  # the run ended, or gave up waiting, while this kernel started
            shutdown(km)

    def take(self):
        """The warmed kernel's manager (for papermill's ``km``), or None when there is none or its
        warm-up failed; the caller shuts it down once its notebook ran (:func:`shutdown`)."""
        if self._thread is not None:
            self._thread.join(TIMEOUT_S * 2 + 10)
            if self._thread.is_alive():  # still starting: left to finish (and shut down) by itself
                return None
            self._thread = None
        km, self._km = self._km, None
        if km is None and self._error:
            log.debug("kernel warm-up failed (%s); the notebook starts its own kernel", self._error)
            self._error = None
        if km is not None and not run_async(km.is_alive()):  # died while it waited: start a fresh one
            shutdown(km)
            return None
        return km

    def close(self) -> None:
        """Shut down a kernel that no notebook took; one still starting shuts itself down."""
        with self._lock:
            self._closed = True
            km, self._km = self._km, None
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
        shutdown(km)


class KernelsAhead:
    """Warm kernels for the notebooks to come, one per notebook (by any key, such as its stage's
    name), each started with that notebook's warm-up code."""

    def __init__(self, kernel_name: str, cwd: Path):
        self.kernel_name, self.cwd = kernel_name, cwd
        self._warm: dict[str, WarmKernel] = {}

    def start(self, key: str, code: str = WARM_UP) -> None:
        """Begin warming a kernel for ``key`` (nothing if one is already there)."""
        if key not in self._warm:
            self._warm[key] = warm = WarmKernel(self.kernel_name, self.cwd, code)
            warm.start()

    def take(self, key: str):
        """The warmed kernel of ``key`` (see :meth:`WarmKernel.take`), or None when none was started."""
        warm = self._warm.pop(key, None)
        if warm is None:
            return None
        try:
            return warm.take()
        finally:
            warm.close()  # one still starting after the wait (or an interrupted wait) shuts itself down

    def close(self) -> None:
        """Shut down every kernel no notebook took."""
        for warm in self._warm.values():
            warm.close()
        self._warm.clear()


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """Within the block, papermill's client treats a kernel it is handed (``km=``) as its own: it
    stops its channels after the notebook and has the kernel shut down (nbclient leaves both to the
    caller otherwise, and warns when the unstopped client is collected). The kernel shuts down
    gracefully in the background (:func:`shutdown_later`): the notebook is saved and the next stage
    goes on while it exits. For one notebook at a time, as ``xnli-study run`` executes them."""
    from nbclient.util import ensure_async, run_sync
    from papermill import engines
    from papermill.clientwrap import PapermillNotebookClient

    class OwningClient(PapermillNotebookClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.owns_km = True

        async def _async_cleanup_kernel(self) -> None:
            km, kc = self.km, self.kc
            self.km = self.kc = None
            try:
                if kc is not None:
                    await ensure_async(kc.stop_channels())
            finally:
                shutdown_later(km)

        _cleanup_kernel = run_sync(_async_cleanup_kernel)

    previous = engines.PapermillNotebookClient
    engines.PapermillNotebookClient = OwningClient
    try:
        yield
    finally:
        engines.PapermillNotebookClient = previous


def run_async(coroutine):
    """Run ``coroutine`` to its end from synchronous code: here, or in a thread of its own when
    this thread already runs an event loop (as a caller inside a notebook or a test runner may)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


#: kernels shutting down in the background (:func:`shutdown_later`): manager id -> (manager, thread);
#: the manager is held until :func:`wait_for_shutdowns`, so that its id is not reused meanwhile
_closing: dict[int, tuple[object, threading.Thread]] = {}
#: seconds a graceful shutdown may take before the kernel is killed (jupyter_client's own wait)
SHUTDOWN_WAIT_S = 5.0


def shutdown_later(km) -> None:
    """Shut a kernel down gracefully (a shutdown request, then a kill if it has not exited within
    ``SHUTDOWN_WAIT_S``) in a thread of its own; :func:`wait_for_shutdowns` waits for it. A kernel
    takes about a second to exit, which a stage need not wait for."""
    if km is None or id(km) in _closing:
        return

    def run() -> None:
        try:
            run_async(_shutdown(km, now=False))
        except Exception as err:  # noqa: BLE001 - a kernel that is gone already, or one to kill
            log.debug("graceful kernel shutdown: %s", err)
            try:
                run_async(_shutdown(km, now=True))
            except Exception as again:  # noqa: BLE001 - gone
                log.debug("kernel shutdown: %s", again)

    thread = threading.Thread(target=run, daemon=True)
    _closing[id(km)] = (km, thread)
    thread.start()


def wait_for_shutdowns(timeout: float = SHUTDOWN_WAIT_S + 5) -> None:
    """Wait until the kernels shutting down in the background have exited."""
    for key, (_, thread) in list(_closing.items()):
        thread.join(timeout)
        if not thread.is_alive():
            _closing.pop(key, None)


def shutdown(km) -> None:
    """Shut a kernel manager's kernel down now (nothing when None, already gone, or shutting down
    in the background)."""
    if km is None or id(km) in _closing:
        return
    try:
        run_async(_shutdown(km))
    except Exception as err:  # noqa: BLE001 - a kernel that is gone already
        log.debug("kernel shutdown: %s", err)


async def _shutdown(km, *, now: bool = True) -> None:
    if await km.is_alive():
        km.shutdown_wait_time = SHUTDOWN_WAIT_S
        await km.shutdown_kernel(now=now)
    await km.cleanup_resources() if asyncio.iscoroutinefunction(km.cleanup_resources) else km.cleanup_resources()
