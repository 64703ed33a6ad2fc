"""JupyterLab as a person uses it: a real `jupyter lab` server and headless Chromium. Notebooks 03 and
04 are opened on the session's smoke run, run through the UI (Run > Run All Cells) in the project's
kernel, and show their tables and figures without an error (and without computing the complete
stages again); notebook 03 on a run folder that has nothing yet shows the one-line message."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from xnli_study.environment import KERNEL_DISPLAY
from xnli_study.runfolder import RunFolder

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: every cell attached to the page, so that the test sees all of them
WINDOWING = {"windowingMode": "none"}
#: offline: no news feed and no update check (and no toast asking about them)
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}
ALL_RUN = ("() => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
           ".jp-CodeCell .jp-InputPrompt')]; return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, project, smoke_run):
    """A `jupyter lab` server on 127.0.0.1 (a free port, a token) over a folder with two copies of
    the committed notebooks: ``notebooks/`` whose default profile points at the session's smoke
    run, and ``fresh/notebooks/`` whose profile names a run folder with nothing in it yet."""
    run_dir, _ = smoke_run
    root = tmp_path_factory.mktemp("lab")
    state = tmp_path_factory.mktemp("lab-state")
    smoke = (project / "params" / "smoke.yaml").read_text()
    for where, extra in (("", f"\noutput_dir: {run_dir.parent}\n"),
                         ("fresh", f"\noutput_dir: {state / 'outputs'}\nrun_name: nothing-yet\n")):
        base = root / where
        (base / "params").mkdir(parents=True)
        (base / "params" / "smoke.yaml").write_text(smoke + extra)
        (base / "notebooks").mkdir()
        for name in ("03_xnli_transfer.ipynb", "04_alignment.ipynb"):
            (base / "notebooks" / name).write_bytes((Path(__file__).parents[1] / "notebooks" / name).read_bytes())
    for extension, name, values in (("notebook-extension", "tracker", WINDOWING),
                                    ("apputils-extension", "notification", NO_NEWS)):
        folder = state / "settings" / "@jupyterlab" / extension
        folder.mkdir(parents=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces")}
    log = (state / "lab.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start: {(state / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root, "run_dir": run_dir, "log": state / "lab.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def open_and_run_all(browser, lab, path: str, *, until: str = ALL_RUN):
    """Open ``path`` in JupyterLab, check the project's kernel runs it, run every cell through the
    Run menu, wait for ``until``, save; return the page, its page errors and the saved notebook.
    If the page never gets there, its screenshot and the server's log say where it stopped."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        return _run_all(page, errors, lab, path, until)
    except Exception as err:
        shot = lab["log"].with_name(f"failed-{path.replace('/', '-')}.png")
        page.screenshot(path=str(shot))
        raise AssertionError(f"{path} in JupyterLab: {err}; the page: {shot}; the server's log ends:\n"
                             f"{lab['log'].read_text()[-1500:]}") from err


def _run_all(page, errors, lab, path: str, until: str):
    # a workspace of its own, reset: only this notebook opens (none restored from an earlier page)
    workspace = path.replace("/", "-").replace(".", "-")
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab['token']}",
              wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    dialog = page.locator(".jp-Dialog")
    if dialog.count():  # asked for a kernel: pick the project's
        dialog.locator("select").select_option(label=KERNEL_DISPLAY)
        dialog.get_by_role("button", name="Select").click()
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Toolbar").get_by_text(KERNEL_DISPLAY, exact=True).first.wait_for(timeout=60_000)  # its kernel
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']").first \
        .wait_for(state="attached", timeout=60_000)  # the kernel has started
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(until, timeout=300_000)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click()
    page.keyboard.press("Control+s")
    saved = lab["root"] / path
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nb = nbformat.read(saved, as_version=4)
        if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            break
        time.sleep(0.5)
    return page, errors, nb


def shut_down_kernels(lab) -> None:
    """End every kernel the server runs (a closed page leaves its kernel running)."""
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions", headers=headers)) as answer:
        sessions = json.loads(answer.read())
    for session in sessions:
        request = urllib.request.Request(f"{lab['url']}/api/sessions/{session['id']}", method="DELETE", headers=headers)
        urllib.request.urlopen(request).close()


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.mark.parametrize("name, images", [("03_xnli_transfer.ipynb", 3), ("04_alignment.ipynb", 3)])
def test_a_stage_notebook_runs_in_jupyterlab(browser, lab, name, images):
    before = RunFolder(lab["run_dir"]).record("transfer").stat().st_mtime_ns
    page, errors, nb = open_and_run_all(browser, lab, f"notebooks/{name}")
    # every code cell ran, none failed
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert not [o for o in outputs(nb) if o.get("output_type") == "error"]
    # a table and the figures are on the page, loaded
    tables = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output table")
    assert tables.count() >= 1
    loaded = page.eval_on_selector_all(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img",
                                       "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert len(loaded) >= images and all(loaded)
    # the complete stages were shown from the run folder, not computed again
    stderr = "".join(o.get("text", "") for o in outputs(nb) if o.get("name") == "stderr")
    assert "showing its results from the run folder" in stderr
    assert RunFolder(lab["run_dir"]).record("transfer").stat().st_mtime_ns == before
    assert errors == []
    if name.startswith("03"):
        tables.first.scroll_into_view_if_needed()
        shot = RunFolder(lab["run_dir"]).lab_png
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 30_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
    shut_down_kernels(lab)


def test_a_notebook_before_its_inputs_shows_one_line(browser, lab):
    failed = ("() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')]"
              ".some(e => e.textContent.includes('StageNotReadyError'))")
    page, errors, nb = open_and_run_all(browser, lab, "fresh/notebooks/03_xnli_transfer.ipynb", until=failed)
    shown = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output",
                         has_text="StageNotReadyError").first.inner_text()
    assert "xnli-study run --params" in shown and "Traceback" not in shown and "File " not in shown
    assert len(shown.strip().splitlines()) <= 3
    saved = [o for o in outputs(nb) if o.get("output_type") == "error"]
    assert len(saved) == 1 and saved[0]["ename"] == "StageNotReadyError"
    assert errors == []
    page.close()
    shut_down_kernels(lab)
