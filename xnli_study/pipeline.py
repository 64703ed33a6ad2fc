"""Running the study: the stage notebooks in order with papermill, then the HTML render.

:func:`run_study` is what ``xnli-study run`` calls. It checks the params (:mod:`preflight`), skips
the stages already complete for these settings (:mod:`stages`), runs the others and records each
one's status and timing in the run's manifest. :func:`render_report` is the last step, with its
own record: ``report.html`` counts as done only once it exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path


from .config import load_params
from .environment import NOTEBOOKS_DIR, ensure_kernel, manifest_base
from .errors import ParamsError, StudyError
from . import faults
from .files import read_json, remove_partial, write_json, write_text
from .kernels import MODELS_WARM_UP, WARM_UP, KernelsAhead, shutdown as shutdown_kernel, wait_for_shutdowns
from .models import tiny_folder
from .preflight import preflight
from .provenance import hash_tree, hub_revisions, local_data
from .render import build_report
from .runfolder import RUN_FOLDER_VERSION, UNIT_FILES, RunFolder
from .stages import (STAGE_BY_NAME, STAGES, Stage, at_run_dir, execute_notebook, get_stage, now, set_args,
                     stage_complete, stage_status, write_record)
from .study import TRAINING_STAGES, UnitsRun, one_line, run_units, train_ahead, unit_work, units_side_by_side
from .units import UNIT_STAGES, describe, shard_of, stage_units, unit_status

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


def _execute(stage: Stage, *, notebooks: Path, folder: RunFolder, kernel: str, progress: bool,
             km=None) -> None:
    """Run one stage: its notebook through papermill (into the run folder, atomically; in ``km``'s
    kernel when one was started for it), or the render step in-process. Raises ``StageFailed``."""
    if stage.notebook is None:
        try:
            render_report(folder.root)
        except Exception as err:  # the render has no notebook to point at: name the error itself
            raise StageFailed(stage.name, None, f"{type(err).__name__}: {err}") from err
        return
    folder.record(stage.name).unlink(missing_ok=True)  # the notebook computes the stage, never reuses it
    error = execute_notebook(stage, folder, notebooks=notebooks, kernel=kernel, progress=progress,
                             parameters={"update_run_copy": False}, km=km)  # this is the run folder's copy
    if error:
        raise StageFailed(stage.name, folder.executed(stage.notebook), error)


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
              progress: bool = True, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Run the stages in order; return the run folder.

    Stages already complete for the same params are skipped unless ``force`` (which still reuses
    the content-keyed caches: their keys prove them current) or ``rebuild_caches`` (which first
    deletes this run's caches, then runs every stage); once a stage runs,
    every later selected stage runs too. On failure raises ``StageFailed`` naming the stage and
    the executed notebook that shows the error. ``overrides`` (``KEY=VALUE``) are set on the
    params before validation; the run folder records the params with them.
    """
    config = at_run_dir(load_params(params_path, overrides), out)
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
            f"run them too: xnli-study run --params {params_path}{set_args(overrides)}{out_arg} --stages "
            f"{' '.join(s.name for s in STAGES if s.name in set(missing) | set(selected))}")
    notebooks = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    kernel = ensure_kernel()
    folder.root.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder.lock, shared=False, busy=f"shards or another run are using {folder.root}; wait for "
                                                     "them to end (a run without --shard tidies the folder first)"):
        return _run_stages(config, folder, selected=selected, force=force, rebuild_caches=rebuild_caches,
                           notebooks=notebooks, kernel=kernel, progress=progress)


def _run_stages(config, folder: RunFolder, *, selected: list[str], force: bool, rebuild_caches: bool,
                notebooks: Path, kernel: str, progress: bool) -> Path:
    """:func:`run_study` once it holds the run folder alone."""
    if rebuild_caches:
        for path in clear_caches(config):
            log.info("cache removed: %s", path)
        force = True
    warm = KernelsAhead(kernel, notebooks)  # the next notebooks' kernels, started while a stage runs
    first = _first_to_run(config, folder, selected, force)
    if first is not None:  # the first one's, while this process tidies, hashes and imports papermill
        warm.start(first.name, warm_up_code(config, first))
    try:
        fragments = shard_fragments(folder)
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
        if fragments:  # the shards that ran into this folder: what each did, where, how long
            manifest["shards"] = {name: {k: f.get(k) for k in ("shard", "status", "host", "cuda_visible_devices",
                                                               "started_at", "finished_at", "seconds", "units")}
                                  for name, f in fragments.items()}
        rerun_rest: str | None = "--force" if force else None
        _stage_loop(config, folder, manifest, selected=selected, rerun_rest=rerun_rest, force=force,
                    notebooks=notebooks, kernel=kernel, progress=progress, warm=warm)
    finally:
        warm.close()
        wait_for_shutdowns()  # the stage notebooks' kernels have exited when the run ends
    return folder.root


def warm_up_code(config, stage: Stage) -> str:
    """What the kernel of ``stage``'s notebook imports before it is handed over: what every stage
    notebook imports, and transformers' model machinery where the notebook loads a model in its own
    kernel (the alignment stage; a training stage whose units run in the kernel, neither side by
    side nor launched; the data stage when it pretrains the tiny P), since elsewhere those seconds
    only slow the processes that do the work."""
    training_here = (stage.name in TRAINING_STAGES and not units_side_by_side(config)
                     and not config.distributed.launched)
    pretraining_here = stage.name == "data" and config.encoder.name == "tiny" and not tiny_folder(config).is_dir()
    if stage.name == "alignment" or training_here or pretraining_here:
        return f"{WARM_UP}\n{MODELS_WARM_UP}"
    return WARM_UP


def _why_it_runs(config, folder: RunFolder, stage: Stage) -> str | None:
    """Why ``stage`` must run in ``folder`` (incomplete for these params, or its executed notebook
    missing); None when it is complete."""
    why = stage_status(folder.root, stage.name, config)
    if why is None and stage.notebook and not folder.executed(stage.notebook).exists():
        why = f"output missing: {folder.relative(folder.executed(stage.notebook))}"
    return why


def _first_to_run(config, folder: RunFolder, selected: list[str], force: bool) -> Stage | None:
    """The first selected stage with a notebook that will run (incomplete, or forced)."""
    for stage in STAGES:
        if stage.name in selected and stage.notebook and (force or _why_it_runs(config, folder, stage)):
            return stage
    return None


def _stage_loop(config, folder: RunFolder, manifest: dict, *, selected: list[str], rerun_rest: str | None,
                force: bool, notebooks: Path, kernel: str, progress: bool, warm: KernelsAhead) -> None:
    """The stages of :func:`_run_stages`, in order: each skipped when complete, else executed and
    recorded in the manifest."""
    trained_ahead: set[str] = set()  # the training stages whose units were trained ahead of their notebook
    for index, stage in enumerate(STAGES):
        if stage.name not in selected:
            continue
        why = _why_it_runs(config, folder, stage) or rerun_rest
        if why is None:
            log.info("stage %s: complete, skipped (use --force to run it again)", stage.name)
            manifest["stages"].setdefault(stage.name, {})["status"] = "done"
            continue
        log.info("stage %s runs: %s", stage.name, why)
        if stage.name in UNIT_STAGES:  # units trained ahead in this run were forced (or not) then
            say_units(folder, config, stage.name, force=force and stage.name not in trained_ahead)
        rerun_rest = rerun_rest or f"stage {stage.name} ran again"
        entry = {"status": "running", "started_at": now()}
        if stage.notebook:
            entry["notebook"] = folder.relative(folder.executed(stage.notebook))
        manifest["stages"][stage.name] = entry
        write_json(folder.manifest, manifest)
        log.info("stage %s: %s", stage.name, f"executing {stage.notebook}" if stage.notebook else "running")
        started = time.perf_counter()
        error: StageFailed | None = None
        km = None
        try:
            with _sigterm_as_interrupt():
                km = warm.take(stage.name) if stage.notebook else None
                later = [s for s in STAGES[index + 1:] if s.notebook and s.name in selected]
                if stage.notebook and later:
                    warm.start(later[0].name, warm_up_code(config, later[0]))  # the next notebook's kernel starts now
                if stage.name in TRAINING_STAGES and not trained_ahead and units_side_by_side(config):
                    # every training stage from here on runs: their units train side by side in one
                    # set of workers, chain by chain; the notebooks then put the stages together
                    ahead = [s.name for s in STAGES[index:] if s.name in TRAINING_STAGES and s.name in selected]
                    trained_ahead.update(ahead)
                    for next_stage in ahead[1:]:
                        log.info("stage %s: its units train now, beside stage %s's", next_stage, stage.name)
                        say_units(folder, config, next_stage, force=force)
                    # while both cores train, the later notebooks' kernels start too: none of them then
                    # starts beside a notebook that computes (torch's threads slow down on a busy core)
                    for after in later:
                        warm.start(after.name, warm_up_code(config, after))
                    try:
                        trained = train_ahead(config, folder.root, folder.params, ahead)
                    except Exception as err:  # noqa: BLE001 - only a head start: the notebooks train what is left
                        log.warning("training the units of %s ahead stopped (%s); the stage notebooks train what "
                                    "is left", ", ".join(ahead), one_line(err))
                        trained = {}
                    if trained:
                        entry["units_trained_ahead"] = trained
                        write_json(folder.manifest, manifest)
                _execute(stage, notebooks=notebooks, folder=folder, kernel=kernel, progress=progress, km=km)
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
        finally:
            shutdown_kernel(km)  # papermill's client has it shut down after the notebook; this, on any other path
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


# ---- shards: the chains of one run shared out between processes, GPUs or cluster nodes --------
def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ParamsError(f"--shard {text!r}: give I/N with 0 <= I < N, e.g. --shard 0/4 for the first of four "
                          "(a Slurm job array: scripts/slurm_array.sh numbers the shards from the array's first task)")
    return int(match[1]), int(match[2])


@contextlib.contextmanager
def folder_lock(path: Path, *, shared: bool, busy: str = "", wait: bool = False):
    """Hold the lock file ``path`` (``flock``), shared or alone; without ``wait``, raise
    ``StudyError(busy)`` at once when another process holds it the other way. Shards hold the
    run folder's lock shared while they run, a run without ``--shard`` holds it alone (it tidies
    the folder: half-written files, stale checkpoints); the shard that prepares the data stage
    holds the data lock while the others wait for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, mode)
        except BlockingIOError:
            raise StudyError(busy) from None
        except OSError as err:
            raise StudyError(
                f"cannot lock {path} ({err.strerror}): its file system does not support flock; put the run folder "
                "on one that does (Lustre mounted with -o flock, NFS with locking)") from None
        yield


def shard_fragments(folder: RunFolder) -> dict[str, dict]:
    """Every shard's manifest fragment in the run folder, by shard folder name."""
    found = {}
    for path in sorted(folder.shards.glob("*/")):
        try:
            found[path.name] = read_json(path / folder.shard(0, 1, "manifest").name)
        except (OSError, ValueError):
            continue
    return found


def run_shard(params_path: str | Path, *, shard: tuple[int, int], out: str | Path | None = None,
              notebooks_dir: str | Path | None = None, progress: bool = True,
              overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Run shard ``I`` of ``N``: the data stage if no shard has (under the run folder's data lock),
    then the units of the chains whose index is I modulo N (:func:`~xnli_study.units.shard_of`),
    into the shared run folder. The shard writes its own log and manifest fragment under
    ``shards/<I>-of-<N>/`` and never a file another shard writes; the stages' tables, records and
    report come from a later run without ``--shard``, which finds these units complete. A second
    copy of the same shard, or a shard while a run without ``--shard`` uses the folder, is refused."""
    index, count = shard
    config = at_run_dir(load_params(params_path, overrides), out)
    folder = RunFolder(config.run_dir)
    preflight(config)
    check_version(folder)
    notebooks = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    name = f"{index}/{count}"
    with _sigterm_as_interrupt(), \
            folder_lock(folder.shard(index, count, "lock"), shared=False,
                        busy=f"shard {name} is already running in {folder.root}; wait for it to end"), \
            folder_lock(folder.lock, shared=True,
                        busy=f"a run without --shard is using {folder.root}; wait for it to end, then start the shards"):
        _run_shard(config, folder, index=index, count=count, notebooks=notebooks, progress=progress)
    log.info("shard %s: done. When every shard is done, put the stages together (tables, statistics, report) "
             "with the same command without --shard", name)
    return folder.root


def _run_shard(config, folder: RunFolder, *, index: int, count: int, notebooks: Path, progress: bool) -> None:
    """:func:`run_shard` once it holds its locks."""
    params_text = config.to_yaml()
    own_params = write_text(folder.shard(index, count, "params"), params_text)
    handler = logging.FileHandler(folder.shard(index, count, "log"), mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    fragment = {**manifest_base(config), "shard": f"{index}/{count}", "host": socket.gethostname(), "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "status": "running",
                "started_at": now(), "units": {}}
    fragment.pop("stages")
    write_json(folder.shard(index, count, "manifest"), fragment)
    started = time.perf_counter()
    try:
        with folder_lock(folder.data_lock, shared=False, wait=True):  # what every chain needs, prepared once
            if not folder.params.is_file() or folder.params.read_text(encoding="utf-8") != params_text:
                write_text(folder.params, params_text)
            why = stage_status(folder.root, "data", config)
            fragment["data"] = "complete, skipped" if why is None else f"ran: {why}"
            if why is not None:
                log.info("shard %d/%d: stage data runs: %s", index, count, why)
                _execute(STAGE_BY_NAME["data"], notebooks=notebooks, folder=folder, kernel=ensure_kernel(),
                         progress=progress)
                if not stage_complete(folder.root, "data", config):
                    raise StageFailed("data", folder.executed(STAGE_BY_NAME["data"].notebook),
                                      "it finished but did not record all its outputs")
        for stage in UNIT_STAGES:
            units = [u for u in stage_units(config, stage) if shard_of(config, u, count) == index]
            todo, why = describe(folder.root, units)
            log.info("shard %d/%d, stage %s: %d units to run, %d complete and reused", index, count, stage,
                     len(todo), len(units) - len(todo))
            for line in why:
                log.info("    %s", line)
            run = UnitsRun(config=config, run_dir=folder.root, stage=STAGE_BY_NAME[stage], params_path=str(own_params))
            fragment["units"][stage] = {"run": [u.name for u in todo],
                                        "reused": [u.name for u in units if u not in todo]}
            run_units(run, units, todo, unit_work(run, todo))
            write_json(folder.shard(index, count, "manifest"), fragment)
        fragment["status"] = "done"
    except KeyboardInterrupt:
        fragment["status"] = "interrupted"
        raise
    except Exception as err:
        fragment.update(status="failed", error=" ".join(str(err).split()))
        raise
    finally:
        fragment.update(finished_at=now(), seconds=round(time.perf_counter() - started, 2))
        write_json(folder.shard(index, count, "manifest"), fragment)
        log.removeHandler(handler)
        handler.close()
