"""Running the study: the stage notebooks in order with papermill, then the HTML render.

:func:`run_study` is what ``xnli-study run`` calls. It checks the params (:mod:`preflight`), skips
the stages already complete for these settings (:mod:`stages`), runs the others and records each
one's status and timing in the run's manifest. :func:`render_report` is the last step, with its
own record: ``report.html`` counts as done only once it exists.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import threading
import time
from pathlib import Path

import papermill as pm

from .config import load_params
from .environment import NOTEBOOKS_DIR, ensure_kernel, manifest_base
from .errors import StudyError
from . import faults
from .files import atomic_path, read_json, remove_partial, write_json, write_text
from .models import tiny_folder
from .preflight import preflight
from .provenance import hash_tree, hub_revisions, local_data
from .render import build_report
from .runfolder import RUN_FOLDER_VERSION, UNIT_FILES, RunFolder
from .stages import (STAGE_BY_NAME, STAGES, Stage, at_run_dir, get_stage, now, stage_complete, stage_status,
                     write_record)
from .units import UNIT_STAGES, describe, stage_units, unit_status

log = logging.getLogger("xnli_study")


class StageFailed(StudyError):
    """A stage raised an error; for a notebook stage, the executed notebook shows it."""

    def __init__(self, stage: str, notebook: Path | None, error: str):
        self.stage, self.notebook = stage, notebook
        where = f"\n  the executed notebook shows the error: {notebook}" if notebook else ""
        super().__init__(f"stage '{stage}' failed: {error}{where}")


def missing_upstream(config, run_dir: Path, selected: list[str]) -> list[str]:
    """Stages that the selected ones need, that are not selected and not complete."""
    missing: list[str] = []
    for name in selected:
        for need in STAGE_BY_NAME[name].needs:
            if need not in selected and need not in missing and not stage_complete(run_dir, need, config):
                missing.append(need)
    return missing


def render_report(run_dir: str | Path, config=None) -> Path:
    """Render ``report.html`` from the executed notebooks and record the ``render`` step.

    The record is written only after the HTML exists, so a render that fails is retried by the
    next run. ``config`` defaults to the run folder's own ``params.yaml``.
    """
    folder = RunFolder(run_dir)
    if not folder.root.is_dir():
        raise StudyError(f"no run folder at {folder.root}; run the study first: "
                         "xnli-study run --params <profile> (or make study)")
    if config is None:
        if not folder.params.is_file():
            raise StudyError(f"{folder.root} is not a run folder (it has no {folder.params.name}); "
                             "run the study first")
        check_version(folder)
        config = at_run_dir(load_params(folder.params), folder.root)
    started = time.perf_counter()
    folder.record("render").unlink(missing_ok=True)
    out = build_report(folder.root)
    write_record(folder.root, "render", config, outputs=[folder.relative(out)],
                 seconds=time.perf_counter() - started)
    return out


def _execute(stage: Stage, *, notebooks: Path, folder: RunFolder, kernel: str, progress: bool) -> None:
    """Run one stage: its notebook through papermill (into the run folder, atomically), or the
    render step in-process. Raises ``StageFailed``."""
    if stage.notebook is None:
        try:
            render_report(folder.root)
        except Exception as err:  # the render has no notebook to point at: name the error itself
            raise StageFailed(stage.name, None, f"{type(err).__name__}: {err}") from err
        return
    executed = folder.executed(stage.notebook)
    error = None
    with atomic_path(executed) as tmp:  # the executed notebook appears whole, failed or not
        try:
            pm.execute_notebook(
                str(notebooks / stage.notebook), str(tmp),
                parameters={"params_path": str(folder.params), "run_dir": str(folder.root)},
                kernel_name=kernel, cwd=str(notebooks), progress_bar=progress,
                request_save_on_cell_execute=False,
            )
        except pm.PapermillExecutionError as err:
            error = f"{err.ename}: {err.evalue}"
    if error:
        raise StageFailed(stage.name, executed, error)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM (a scheduler ending the job) raises ``KeyboardInterrupt`` as
    Ctrl-C does, so that the run records where it stopped; the previous handler comes back after.
    Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def clear_caches(config) -> list[Path]:
    """Delete the caches this run's params read (``--rebuild-caches``): the run folder's embedding
    and tokenised-data caches and its synthetic sample, and the pretrained tiny P of these settings
    in the shared cache (other settings' P stay). Returns what was removed."""
    folder = RunFolder(config.run_dir)
    targets = [folder.embeddings_cache, folder.tokenized_cache, folder.sample]
    if config.encoder.name == "tiny":
        targets.append(tiny_folder(config))
    removed = []
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def check_version(folder: RunFolder) -> None:
    """Refuse a run folder written by another version of the tool: its records cannot be trusted."""
    if not folder.manifest.exists():
        return
    try:
        version = read_json(folder.manifest).get("run_folder_version", 1)
    except (OSError, ValueError, AttributeError):
        raise StudyError(f"{folder.manifest} cannot be read (a run killed while writing it, or edited by "
                         "hand); delete that run folder or run into another (--out)") from None
    if version != RUN_FOLDER_VERSION:
        raise StudyError(
            f"run folder {folder.root} was written by another version of xnli-study (run folder version "
            f"{version}; this one writes version {RUN_FOLDER_VERSION}), so its records cannot be trusted; "
            "run into a new folder (--out, or another run_name) or delete that one")


def stale_checkpoints(folder: RunFolder, config) -> list[Path]:
    """Training checkpoints no rerun will resume from: those of units complete for these params,
    and of units these params no longer have (a dropped condition or seed)."""
    stale = []
    for stage in UNIT_STAGES:
        planned = {u.name: u for u in stage_units(config, stage)}
        for path in sorted(folder.units(stage).glob(f"*/{UNIT_FILES['checkpoints']}")):
            unit = planned.get(path.parent.name)
            if unit is None or unit_status(folder.root, unit) is None:
                stale.append(path)
    return stale


def say_units(folder: RunFolder, config, stage: str, *, force: bool) -> None:
    """Log which units of ``stage`` run and why, and which are reused. With ``force`` their
    records are deleted first, so every unit runs."""
    units = stage_units(config, stage)
    if force:
        for unit in units:
            folder.unit(stage, unit.name, "record").unlink(missing_ok=True)
    todo, why = describe(folder.root, units, force=force)
    reused = len(units) - len(todo)
    log.info("  units: %d to run, %d complete and reused", len(todo), reused)
    for line in why:
        log.info("    %s", line)


def run_study(params_path: str | Path, *, stages: list[str] | None = None, out: str | Path | None = None,
              force: bool = False, notebooks_dir: str | Path | None = None, rebuild_caches: bool = False,
              progress: bool = True) -> Path:
    """Run the stages in order; return the run folder.

    Stages already complete for the same params are skipped unless ``force`` (which still reuses
    the content-keyed caches: their keys prove them current) or ``rebuild_caches`` (which first
    deletes this run's caches, then runs every stage); once a stage runs,
    every later selected stage runs too. On failure raises ``StageFailed`` naming the stage and
    the executed notebook that shows the error.
    """
    config = at_run_dir(load_params(params_path), out)
    folder = RunFolder(config.run_dir)
    selected = stages or [s.name for s in STAGES]
    for name in selected:
        get_stage(name)
    preflight(config)
    check_version(folder)
    missing = missing_upstream(config, folder.root, selected)
    if missing:
        out_arg = f" --out {folder.root}" if out else ""
        raise StudyError(
            f"stage(s) {', '.join(selected)} need {', '.join(missing)}, not complete in {folder.root}; "
            f"run them too: xnli-study run --params {params_path}{out_arg} --stages "
            f"{' '.join(s.name for s in STAGES if s.name in set(missing) | set(selected))}")
    notebooks = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    kernel = ensure_kernel()
    if rebuild_caches:
        for path in clear_caches(config):
            log.info("cache removed: %s", path)
        force = True
    folder.root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder.scratch, ignore_errors=True)  # temporary checkpoints a killed run left behind
    for path in remove_partial(folder.root):  # half-written files a killed run left behind
        log.info("removed a half-written file a killed run left: %s", folder.relative(path))
    for path in stale_checkpoints(folder, config):
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed the training checkpoints of a unit that needs none: %s", folder.relative(path))
    write_text(folder.params, config.to_yaml())
    manifest = manifest_base(config)  # a new run: no "interrupted" entry until this one is
    manifest["data_files"] = local_data(config)  # SHA-256 of every local data file the params name
    manifest["hub"] = hub_revisions(config)
    try:
        manifest["stages"] = read_json(folder.manifest).get("stages", {})
    except (OSError, ValueError):
        pass
    rerun_rest: str | None = "--force" if force else None
    for stage in STAGES:
        if stage.name not in selected:
            continue
        why = stage_status(folder.root, stage.name, config)
        if why is None and stage.notebook and not folder.executed(stage.notebook).exists():
            why = f"output missing: {folder.relative(folder.executed(stage.notebook))}"
        why = why or rerun_rest
        if why is None:
            log.info("stage %s: complete, skipped (use --force to run it again)", stage.name)
            manifest["stages"].setdefault(stage.name, {})["status"] = "done"
            continue
        log.info("stage %s runs: %s", stage.name, why)
        if stage.name in UNIT_STAGES:
            say_units(folder, config, stage.name, force=force)
        rerun_rest = rerun_rest or f"stage {stage.name} ran again"
        entry = {"status": "running", "started_at": now()}
        if stage.notebook:
            entry["notebook"] = folder.relative(folder.executed(stage.notebook))
        manifest["stages"][stage.name] = entry
        write_json(folder.manifest, manifest)
        log.info("stage %s: %s", stage.name, f"executing {stage.notebook}" if stage.notebook else "running")
        started = time.perf_counter()
        error: StageFailed | None = None
        try:
            with _sigterm_as_interrupt():
                _execute(stage, notebooks=notebooks, folder=folder, kernel=kernel, progress=progress)
            if not stage_complete(folder.root, stage.name, config):
                error = StageFailed(stage.name, folder.executed(stage.notebook) if stage.notebook else None,
                                    "it finished but did not record all its outputs")
        except StageFailed as err:
            error = err
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a scheduler: say so, and what is done
            done = [name for name, e in manifest["stages"].items() if e.get("status") == "done"]
            units = [u.name for u in stage_units(config, stage.name) if unit_status(folder.root, u) is None]
            entry.update(status="interrupted", finished_at=now(), seconds=round(time.perf_counter() - started, 2))
            manifest["interrupted"] = {"stage": stage.name, "at": now(), "stages_done": done,
                                       "units_done": units}
            write_json(folder.manifest, manifest)
            log.warning("interrupted during stage %s; complete: stages %s%s. Run the same command again to go on.",
                        stage.name, ", ".join(done) or "none",
                        f"; units of {stage.name}: {', '.join(units) or 'none'}" if stage.name in UNIT_STAGES else "")
            raise
        entry.update(seconds=round(time.perf_counter() - started, 2), finished_at=now(),
                     status="failed" if error else "done")
        manifest["hub"] = hub_revisions(config)  # what the stage downloaded is cached now
        if folder.sample.is_dir() and "sample" not in manifest["data_files"]:  # written once, by the data stage
            manifest["data_files"]["sample"] = {"path": str(folder.sample), "sha256": hash_tree(folder.sample)}
        if error:
            entry["error"] = str(error).split("\n")[0]
        write_json(folder.manifest, manifest)
        if error:
            raise error
        log.info("stage %s: done in %.1f s", stage.name, entry["seconds"])
    return folder.root
