"""The study as a chain of stages: each a papermill notebook over this package, linked by files.

A stage counts as complete when its record ``<run>/stages/<stage>.json`` exists, was written for
the same params (fingerprint) and the same upstream runs, and every output it lists exists; the
record is the last thing a stage writes. :class:`StageRun` is the notebook-side handle;
:func:`run_study` is what the CLI calls.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import StudyConfig, load_params
from .errors import ParamsError, StageNotReadyError, StudyError
from .files import atomic_path, read_json, save_figure, write_json, write_table, write_text

log = logging.getLogger("xnli_study")

KERNEL_NAME = "xnli-study"
KERNEL_DISPLAY = "Python (xnli-study)"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    needs: tuple[str, ...]
    #: the params a stage reads; a change elsewhere leaves it complete (upstream changes reach it
    #: through the upstream records); None = every setting
    reads: tuple[str, ...] | None


STAGES: tuple[Stage, ...] = (
    Stage("data", "01_data_inspection.ipynb", (),
          ("encoder", "languages", "data_dir", "xnli", "mnli", "conditions", "tasks",
           "alignment.probe_split")),
    Stage("intermediate", "02_intermediate_training.ipynb", ("data",),
          ("encoder", "languages", "data_dir", "conditions", "tasks", "seeds", "device",
           "training.intermediate")),
    Stage("transfer", "03_xnli_transfer.ipynb", ("data", "intermediate"),
          ("encoder", "languages", "data_dir", "xnli", "mnli", "conditions", "seeds", "device",
           "training.mnli")),
    Stage("alignment", "04_alignment.ipynb", ("data", "intermediate", "transfer"),
          ("encoder", "languages", "data_dir", "xnli", "conditions", "seeds", "device", "alignment")),
    Stage("report", "05_report.ipynb", ("data", "intermediate", "transfer", "alignment"), None),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def record_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / "stages" / f"{stage}.json"


def read_record(run_dir: Path, stage: str) -> dict | None:
    path = record_path(run_dir, stage)
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def stage_complete(run_dir: str | Path, stage: str, config: StudyConfig) -> bool:
    """True when ``stage`` has a record for these params and upstream runs, with all outputs present."""
    run_dir = Path(run_dir)
    record = read_record(run_dir, stage)
    if not record or record.get("fingerprint") != config.fingerprint(STAGE_BY_NAME[stage].reads):
        return False
    for need, finished in record.get("upstream", {}).items():
        upstream = read_record(run_dir, need)
        if not upstream or upstream.get("finished_at") != finished:
            return False
    return all((run_dir / rel).exists() for rel in record.get("outputs", []))


def at_run_dir(config: StudyConfig, run_dir: str | Path | None) -> StudyConfig:
    """``config`` with its run folder moved to ``run_dir`` (nothing else changes)."""
    if not run_dir:
        return config
    run_dir = Path(run_dir).resolve()
    return config.model_copy(update={"output_dir": str(run_dir.parent), "run_name": run_dir.name})


def needs_message(stage: Stage, missing: list[str], params_path: str, run_dir: Path) -> str:
    names = ", ".join(f"'{n}' ({STAGE_BY_NAME[n].notebook})" for n in missing)
    return (f"The '{stage.name}' stage needs {names}, not complete for these params in {run_dir}. "
            f"Run first: xnli-study run --params {params_path} --out {run_dir} --stages "
            f"{' '.join(missing)}  (for the default profile: make study)")


class StageRun:
    """A stage in progress, as a notebook sees it: config, run folder, and output writers.

    Open it in the notebook's first code cell; it checks that the stages it needs are complete
    and says which command to run first if not. Call :meth:`finish` in the last cell.
    """

    def __init__(self, stage: str, *, params_path: str, run_dir: str = ""):
        if stage not in STAGE_BY_NAME:
            raise StudyError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_BY_NAME)}")
        self.stage = STAGE_BY_NAME[stage]
        self.params_path = str(params_path)
        self.config = at_run_dir(load_params(params_path), run_dir)
        self.run_dir = self.config.run_dir
        self.outputs: list[str] = []
        self.started = time.perf_counter()
        missing = [n for n in self.stage.needs if not stage_complete(self.run_dir, n, self.config)]
        if missing:
            raise StageNotReadyError(needs_message(self.stage, missing, self.params_path, self.run_dir))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = self.run_dir / "params.yaml"
        if not resolved.exists():
            write_text(resolved, self.config.to_yaml())
        record_path(self.run_dir, stage).unlink(missing_ok=True)  # incomplete until finish()
        log.info("stage %s: run folder %s", stage, self.run_dir)

    # ---- paths and writers --------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the run folder (parents created)."""
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def _register(self, path: Path) -> Path:
        rel = str(Path(path).resolve().relative_to(self.run_dir))
        if rel not in self.outputs:
            self.outputs.append(rel)
        return path

    def output(self, path: str | Path) -> Path:
        """Declare a file or folder written by other means as an output of this stage."""
        return self._register(Path(path))

    def save_table(self, name: str, frame: pd.DataFrame) -> Path:
        """Write ``tables/<name>`` (``.csv`` or ``.parquet``) atomically."""
        return self._register(write_table(self.path("tables", name), frame))

    def save_figure(self, name: str, fig: Any) -> Path:
        """Write ``figures/<name>.png`` atomically."""
        return self._register(save_figure(fig, self.path("figures", f"{name}.png")))

    def show_figure(self, name: str, fig: Any) -> Path:
        """Save ``figures/<name>.png``, close the figure and display the saved PNG (rendered once),
        with the figure's title as its alternative text."""
        import matplotlib.pyplot as plt
        from IPython.display import Image, display

        titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
        titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
        alt = titles[0] if titles else name.replace("_", " ")
        path = self.save_figure(name, fig)
        plt.close(fig)
        display(Image(filename=str(path), metadata={"alt": alt}))
        return path

    def save_json(self, name: str, data: Any) -> Path:
        return self._register(write_json(self.path(name), data))

    def read_table(self, name: str) -> pd.DataFrame:
        from .files import read_table

        return read_table(self.run_dir / "tables" / name)

    def finish(self, **summary: Any) -> dict:
        """Check every declared output exists, then write the stage record (last)."""
        missing = [rel for rel in self.outputs if not (self.run_dir / rel).exists()]
        if missing:
            raise StudyError(f"stage {self.stage.name}: outputs missing: {', '.join(missing)}")
        upstream = {n: (read_record(self.run_dir, n) or {}).get("finished_at") for n in self.stage.needs}
        record = {
            "stage": self.stage.name, "fingerprint": self.config.fingerprint(self.stage.reads),
            "finished_at": _now(), "seconds": round(time.perf_counter() - self.started, 2),
            "upstream": upstream, "outputs": self.outputs, "summary": summary,
        }
        write_json(record_path(self.run_dir, self.stage.name), record)
        return record


# ---- the kernel ---------------------------------------------------------------------------
def ensure_kernel() -> str:
    """Register the ``xnli-study`` Jupyter kernel for this Python if it is missing or stale."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(KERNEL_NAME)
        if (Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
                and "--IPKernelApp.log_level=CRITICAL" in spec.argv):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    folder = Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY, prefix=sys.prefix))
    # the kernel's own log (e.g. "running over TCP without encryption") would otherwise interleave
    # with every batch run's output; errors in cells still reach the notebook and the CLI
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"] = [*spec["argv"], "--IPKernelApp.log_level=CRITICAL"]
    write_text(spec_file, json.dumps(spec, indent=1))
    log.info("registered Jupyter kernel %r for %s", KERNEL_NAME, sys.executable)
    return KERNEL_NAME


# ---- provenance ---------------------------------------------------------------------------
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--",
                                "xnli_study", "notebooks", "params"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    names = ("xnli-study", "torch", "transformers", "tokenizers", "datasets", "accelerate", "numpy",
             "pandas", "scipy", "scikit-learn", "seaborn", "matplotlib", "papermill", "nbconvert")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _manifest_base(config: StudyConfig) -> dict:
    return {
        "profile": config.profile, "run_name": config.run_name, "fingerprint": config.fingerprint(),
        "seeds": config.seeds, "encoder": config.encoder.name, "conditions": config.conditions,
        "git_commit": _git_commit(), "python": platform.python_version(),
        "platform": platform.platform(), "packages": package_versions(), "stages": {},
    }


# ---- running the study --------------------------------------------------------------------
def preflight(config: StudyConfig) -> None:
    """Every check that needs no training, so that bad input fails in seconds, before any kernel:
    files named in the params exist, the encoder resolves (folder, package, hub or cache), the
    headline layer exists, the device exists, and data sources on the hub can be reached."""
    from .hub import require_hub
    from .models import encoder_depth, pick_device, resolve_encoder_name

    files = []
    if config.xnli.source in ("official", "xtreme"):
        files.append(("xnli.path", config.xnli.path, "dir"))
    if config.xnli.labels_from:
        files.append(("xnli.labels_from", config.xnli.labels_from, "file"))
    if config.mnli.source == "local":
        files.append(("mnli.path", config.mnli.path, "file"))
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "local":
            files.append((f"tasks.{task}.path", config.task_data(task).path, "any"))
    for key, value, kind in files:
        if not value:
            raise ParamsError(f"{key} is not set; it must name the {'folder' if kind == 'dir' else 'file'} to read")
        path = config.data_path(value)
        found = {"dir": path.is_dir(), "file": path.is_file(), "any": path.exists()}[kind]
        if not found:
            what = {"dir": "folder", "file": "file", "any": "file or folder"}[kind]
            raise ParamsError(f"{key}: {what} {str(path)!r} not found")
    name = resolve_encoder_name(config)
    pick_device(config.device)
    layer, layers = config.alignment.headline_layer, config.alignment.layers
    if layer != "auto" or layers != "all":
        depth = encoder_depth(config, name)
        if depth is not None and layer != "auto" and not 0 <= layer <= depth:
            raise ParamsError(f"alignment.headline_layer: {layer} is outside 0..{depth} "
                              f"(the encoder has {depth} layers; 0 is the embedding output)")
        if depth is not None and layers != "all":
            from .alignment import headline_layer

            resolved = headline_layer(layer, depth)
            if resolved not in layers:
                raise ParamsError(f"alignment.layers: {layers} leaves out the headline layer {resolved} "
                                  f"(alignment.headline_layer: {layer}); add it or use layers: all")
    if config.xnli.source == "hub":
        require_hub(f"XNLI ({config.xnli.hub_id})", fix="Set xnli.source: official or xtreme with xnli.path.")
    if config.mnli.source == "hub":
        require_hub(f"MultiNLI ({config.mnli.hub_id})", fix="Set mnli.source: local with mnli.path.")
    from .tasks import get_task, hub_fix

    for task in config.intermediate_conditions:
        if config.task_data(task).source == "hub":
            require_hub(f"task {task!r} ({get_task(task).hub_ids})", fix=hub_fix(get_task(task)))


def missing_upstream(config: StudyConfig, run_dir: Path, selected: list[str]) -> list[str]:
    """Stages that the selected ones need, that are not selected and not complete."""
    missing: list[str] = []
    for name in selected:
        for need in STAGE_BY_NAME[name].needs:
            if need not in selected and need not in missing and not stage_complete(run_dir, need, config):
                missing.append(need)
    return missing


def run_study(params_path: str | Path, *, stages: list[str] | None = None, out: str | Path | None = None,
              force: bool = False, notebooks_dir: str | Path | None = None,
              progress: bool = True) -> Path:
    """Execute the stage notebooks in order with papermill; return the run folder.

    Stages already complete for the same params are skipped unless ``force``; once a stage runs,
    every later selected stage runs too. On failure raises ``StageFailed`` naming the stage and
    the executed notebook that shows the error. The report HTML is rendered after the last stage.
    """
    import papermill as pm

    config = at_run_dir(load_params(params_path), out)
    run_dir = config.run_dir
    selected = stages or [s.name for s in STAGES]
    for name in selected:
        if name not in STAGE_BY_NAME:
            raise StudyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_BY_NAME)}")
    preflight(config)
    missing = missing_upstream(config, run_dir, selected)
    if missing:
        out_arg = f" --out {run_dir}" if out else ""
        raise StudyError(
            f"stage(s) {', '.join(selected)} need {', '.join(missing)}, not complete in {run_dir}; "
            f"run them too: xnli-study run --params {params_path}{out_arg} --stages "
            f"{' '.join(s.name for s in STAGES if s.name in set(missing) | set(selected))}")
    notebooks = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    kernel = ensure_kernel()
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = run_dir / "params.yaml"
    write_text(resolved, config.to_yaml())
    manifest_path = run_dir / "manifest.json"
    manifest = _manifest_base(config)
    try:
        manifest["stages"] = read_json(manifest_path).get("stages", {})
    except (OSError, ValueError):
        pass
    rerun_rest = force
    for stage in STAGES:
        if stage.name not in selected:
            continue
        executed = run_dir / "notebooks" / stage.notebook
        if not rerun_rest and stage_complete(run_dir, stage.name, config) and executed.exists():
            log.info("stage %s: complete, skipped (use --force to run it again)", stage.name)
            manifest["stages"].setdefault(stage.name, {})["status"] = "done"
            continue
        rerun_rest = True
        entry = {"status": "running", "started_at": _now(), "notebook": str(executed.relative_to(run_dir))}
        manifest["stages"][stage.name] = entry
        write_json(manifest_path, manifest)
        log.info("stage %s: executing %s", stage.name, stage.notebook)
        started = time.perf_counter()
        executed.parent.mkdir(parents=True, exist_ok=True)
        error = None
        with atomic_path(executed) as tmp:
            try:
                pm.execute_notebook(
                    str(notebooks / stage.notebook), str(tmp),
                    parameters={"params_path": str(resolved), "run_dir": str(run_dir)},
                    kernel_name=kernel, cwd=str(notebooks), progress_bar=progress,
                    request_save_on_cell_execute=False,
                )
            except pm.PapermillExecutionError as err:
                error = f"{err.ename}: {err.evalue}"
        entry["seconds"] = round(time.perf_counter() - started, 2)
        entry["finished_at"] = _now()
        if error is None and stage.name == "report":
            from .report import build_report

            build_report(run_dir)
        if error is None and not stage_complete(run_dir, stage.name, config):
            error = "the notebook finished but did not record all its outputs"
        entry["status"] = "failed" if error else "done"
        if error:
            entry["error"] = error
        write_json(manifest_path, manifest)
        if error:
            raise StageFailed(stage.name, executed, error)
        log.info("stage %s: done in %.1f s", stage.name, entry["seconds"])
    return run_dir


class StageFailed(StudyError):
    """A stage notebook raised an error; the executed notebook shows it."""

    def __init__(self, stage: str, notebook: Path, error: str):
        self.stage, self.notebook = stage, notebook
        super().__init__(f"stage '{stage}' failed: {error}\n  the executed notebook shows the "
                         f"error: {notebook}")


def setup_notebook() -> None:
    """Prepare a stage notebook's kernel: plain progress logging (one line per step), and a longer
    GIL switch interval. The kernel's I/O threads otherwise contend for the GIL with training's
    Python-heavy loop and slow it by a third; results do not change. Tables show text whole."""
    sys.setswitchinterval(0.05)
    # to stderr: shown while the notebook runs, left out of the rendered report
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # example sentences are shown whole, not cut at 50 characters (pandas escapes their markup)
    pd.set_option("display.max_colwidth", None)
