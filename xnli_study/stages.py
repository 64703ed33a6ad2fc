"""The study's stages, their completion records, and the handle a stage notebook works through.

A stage counts as complete when its record (``RunFolder.record(stage)``) exists, was written for
the same settings (a fingerprint of the settings the stage reads) and the same upstream runs,
and every output it lists exists; the record is the last thing a stage writes. Five stages are
notebooks; the last, ``render``, turns the executed notebooks into ``report.html`` and has its
own record, so a failed render is retried by the next run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import shlex
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Image, display

from .config import NOT_FINGERPRINTED, StudyConfig, load_params, parse_overrides, settings_hash
from .progress import ForwardProgress
from .provenance import input_digests
from .environment import NOTEBOOKS_DIR, ensure_kernel
from .errors import StageNotReadyError, StudyError
from .files import atomic_path, read_json, read_table, save_figure, write_json, write_table, write_text
from .kernels import handed_over
from .runfolder import UNIT_FILES, RunFolder

log = logging.getLogger("xnli_study")


@dataclass(frozen=True)
class Stage:
    name: str
    #: the stage notebook; None for a step run in-process (``render``)
    notebook: str | None
    needs: tuple[str, ...]
    #: the params a stage reads; a change elsewhere leaves it complete (upstream changes reach it
    #: through the upstream records); None = every setting
    reads: tuple[str, ...] | None


STAGES: tuple[Stage, ...] = (
    Stage("data", "01_data_inspection.ipynb", (),
          ("encoder", "languages", "data_dir", "xnli", "mnli", "sample", "conditions", "tasks", "device",
           "alignment.probe_split")),
    Stage("intermediate", "02_intermediate_training.ipynb", ("data",),
          # xnli: parallel_align drops pairs that hold an XNLI dev or test sentence
          # alignment.headline_layer: parallel_align's default layer
          ("encoder", "languages", "data_dir", "sample", "xnli", "conditions", "tasks", "seeds",
           "device", "training.intermediate", "alignment.headline_layer", "distributed")),
    Stage("transfer", "03_xnli_transfer.ipynb", ("data", "intermediate"),
          ("encoder", "languages", "data_dir", "xnli", "mnli", "sample", "conditions", "seeds", "device",
           "training.mnli", "distributed")),
    Stage("alignment", "04_alignment.ipynb", ("data", "intermediate", "transfer"),
          ("encoder", "languages", "data_dir", "xnli", "sample", "conditions", "seeds", "device", "alignment")),
    Stage("report", "05_report.ipynb", ("data", "intermediate", "transfer", "alignment"), None),
    # the HTML joins every executed notebook: it reads no setting of its own
    Stage("render", None, ("data", "intermediate", "transfer", "alignment", "report"), ()),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}
NOTEBOOK_STAGES = tuple(s for s in STAGES if s.notebook)
#: the order of the executed notebooks in ``report.html``: the results section first
REPORT_ORDER = ("report", "data", "intermediate", "transfer", "alignment")


def get_stage(name: str) -> Stage:
    if name not in STAGE_BY_NAME:
        raise StudyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_BY_NAME)}")
    return STAGE_BY_NAME[name]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def read_record(run_dir: str | Path, stage: str) -> dict | None:
    try:
        return read_json(RunFolder(run_dir).record(stage))
    except (OSError, ValueError):
        return None


#: the stages that read the data files and the encoder: their records hold a digest of each
DATA_STAGES = ("data", "intermediate", "transfer", "alignment")
#: the params' own prose, which only the report shows (no number depends on it)
REPORT_TEXT = ("description", "limits")


def stage_settings(config: StudyConfig, stage: str) -> dict:
    """What a stage's results depend on: the settings it reads (:attr:`Stage.reads`), the content
    of the inputs for the stages that read them, and for the report its prose."""
    settings = config.settings(STAGE_BY_NAME[stage].reads)
    if stage in DATA_STAGES:
        settings.update({f"inputs.{k}": v for k, v in input_digests(config).items()})
    if stage == "report":
        settings.update({key: getattr(config, key) for key in REPORT_TEXT})
    return settings


def stage_fingerprint(config: StudyConfig, stage: str) -> str:
    return settings_hash(stage_settings(config, stage))


def stage_complete(run_dir: str | Path, stage: str, config: StudyConfig) -> bool:
    """True when ``stage`` has a record for these params and upstream runs, with all outputs present."""
    return stage_status(run_dir, stage, config) is None


def stage_status(run_dir: str | Path, stage: str, config: StudyConfig) -> str | None:
    """None when ``stage`` is complete for these params; else why it must run."""
    record = read_record(run_dir, stage)
    if not record:
        return "not run yet"
    settings = stage_settings(config, stage)
    if record.get("fingerprint") != settings_hash(settings):
        return changed_settings(record.get("settings", {}), settings)
    for need, finished in record.get("upstream", {}).items():
        upstream = read_record(run_dir, need)
        if not upstream or upstream.get("finished_at") != finished:
            return f"stage {need} ran again"
    missing = [rel for rel in record.get("outputs", []) if not (Path(run_dir) / rel).exists()]
    return f"output missing: {missing[0]}" if missing else None


def write_record(run_dir: str | Path, stage: str, config: StudyConfig, *, outputs: list[str],
                 seconds: float, summary: dict | None = None) -> dict:
    """Write ``stage``'s completion record (call it last): every listed output must exist."""
    folder = RunFolder(run_dir)
    missing = [rel for rel in outputs if not (folder.root / rel).exists()]
    if missing:
        raise StudyError(f"stage {stage}: outputs missing: {', '.join(missing)}")
    record = {
        "stage": stage, "fingerprint": stage_fingerprint(config, stage),
        "settings": stage_settings(config, stage), "finished_at": now(),
        "seconds": round(seconds, 2),
        "upstream": {n: (read_record(run_dir, n) or {}).get("finished_at") for n in STAGE_BY_NAME[stage].needs},
        "outputs": outputs, "summary": summary or {},
    }
    write_json(folder.record(stage), record)
    return record


def changed_settings(old: dict, new: dict) -> str:
    """Why a record no longer holds: the settings (or inputs) that changed, a few named."""
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not changed:
        return "made by another version of the tool"
    named = [f"the content of {k.removeprefix('inputs.')}" if k.startswith("inputs.") else k for k in changed]
    more = f" (and {len(named) - 3} more)" if len(named) > 3 else ""
    return f"{', '.join(named[:3])}{more} changed"


def at_run_dir(config: StudyConfig, run_dir: str | Path | None) -> StudyConfig:
    """``config`` with its run folder moved to ``run_dir`` (nothing else changes)."""
    if not run_dir:
        return config
    run_dir = Path(run_dir).resolve()
    return config.model_copy(update={"output_dir": str(run_dir.parent), "run_name": run_dir.name})


def incomplete_needs(config: StudyConfig, run_dir: Path, stage: str) -> list[str]:
    return [n for n in STAGE_BY_NAME[stage].needs if not stage_complete(run_dir, n, config)]


def set_args(overrides) -> str:
    """``overrides`` as the command line's ``--set`` flags (for the commands a message suggests)."""
    return "".join(f" --set {shlex.quote(item)}" for item in overrides)


def needs_message(stage: Stage, missing: list[str], params_path: str, run_dir: Path, overrides=()) -> str:
    names = ", ".join(f"'{n}' ({STAGE_BY_NAME[n].notebook})" for n in missing)
    return (f"The '{stage.name}' stage needs {names}, not complete for these params in {run_dir}. "
            f"Run first: xnli-study run --params {params_path}{set_args(overrides)} --out {run_dir} --stages "
            f"{' '.join(missing)}  (for the default profile: make study)")


def execute_notebook(stage: Stage, folder: RunFolder, *, notebooks: Path, kernel: str, progress: bool,
                     parameters: dict | None = None, km=None) -> str | None:
    """Run ``stage``'s notebook with papermill into the run folder's executed copy (atomically: it
    appears whole, failed or not). With ``progress`` the kernel's progress lines (which unit, its
    epoch and step, the time left) are passed on to this process's stderr. ``km``: a kernel
    already started for it (:mod:`xnli_study.kernels`; the caller shuts it down), else papermill
    starts one. Returns the error of the failed cell, or None."""
    # imported here: papermill brings nbformat's JSON-schema stack (about 2 s), which a stage
    # notebook's kernel, importing this module, never needs
    import papermill as pm

    executed = folder.executed(stage.notebook)
    with atomic_path(executed) as tmp, (handed_over() if km is not None else contextlib.nullcontext()):
        try:
            pm.execute_notebook(
                str(notebooks / stage.notebook), str(tmp),
                parameters={"params_path": str(folder.params), "run_dir": str(folder.root), **(parameters or {})},
                kernel_name=kernel, cwd=str(notebooks), progress_bar=False,
                stderr_file=ForwardProgress() if progress else None, request_save_on_cell_execute=False,
                **({"km": km} if km is not None else {}),
            )
        except pm.PapermillExecutionError as err:
            return f"{err.ename}: {err.evalue}"
    return None


def mixed_stages(config: StudyConfig, run_dir: Path) -> list[str]:
    """The stages of ``run_dir`` whose record was written for other settings than ``config``
    gives them: a stage computed with ``config`` there would mix settings in one run folder."""
    mixed = []
    for stage in STAGES:
        record = read_record(run_dir, stage.name)
        if record and record.get("fingerprint") != stage_fingerprint(config, stage.name):
            mixed.append(stage.name)
    return mixed


class StageRun:
    """A stage in progress, as a notebook sees it: config, run folder, and output writers.

    Open it in the notebook's first code cell. When the run folder holds the stage complete for
    these params, the stage is not computed again (``reusing``): its units are reused and nothing
    in the run folder is written, so the notebook shows the stage's results in seconds.
    ``recompute=True`` computes it again, units included (as ``xnli-study run --force`` does).
    Otherwise it checks that the stages it needs are complete and says which command to run first
    if not. ``overrides`` (``KEY=VALUE``, as ``xnli-study run --set``) are refused when they change
    settings a stage of the run folder was computed with. With ``update_run_copy`` a stage computed
    here also replaces the run folder's executed copy of its notebook (the one ``report.html``
    embeds), so the report never shows a notebook older than its tables: the notebooks turn it on
    (their parameter of that name), the pipeline, which writes that copy itself, turns it off.
    Call :meth:`finish` in the last cell.
    """

    def __init__(self, stage: str, *, params_path: str, run_dir: str = "", recompute: bool = False,
                 overrides: Any = (), update_run_copy: bool = False):
        self.stage = get_stage(stage)
        self.params_path = str(params_path)
        self.overrides = parse_overrides(overrides)
        self.config = at_run_dir(load_params(params_path, self.overrides), run_dir)
        self.run_dir = self.config.run_dir
        self.folder = RunFolder(self.run_dir)
        self.outputs: list[str] = []
        self.started = time.perf_counter()
        self.update_run_copy = update_run_copy
        rerun = (f"xnli-study run --params {self.params_path}{set_args(self.overrides)} "
                 f"--out {shlex.quote(str(self.run_dir))}")
        if self.overrides:
            mixed = mixed_stages(self.config, self.run_dir)
            if mixed:
                raise StudyError(
                    f"the overrides {', '.join(self.overrides)} change settings that stage {mixed[0]} of "
                    f"{self.run_dir} was computed with; a notebook does not mix settings in one run folder. "
                    f"Run from the command line, which reruns what they touch: {rerun} (or give run_dir a "
                    "new folder for a run of their own)")
        record = read_record(self.run_dir, stage)
        settings = stage_settings(self.config, stage)
        if record and record.get("fingerprint") != settings_hash(settings):
            raise StudyError(
                f"stage {stage} of {self.run_dir} was computed with other settings than {self.params_path} gives "
                f"({changed_settings(record.get('settings', {}), settings)}); a notebook does not recompute a "
                f"stage with other settings in the same run folder. To see it: params_path="
                f"{self.folder.params}; to rerun with these settings: {rerun}")
        missing = incomplete_needs(self.config, self.run_dir, stage)
        self.reusing = not recompute and not missing and stage_complete(self.run_dir, stage, self.config)
        if self.reusing:
            log.info("stage %s is complete in %s (finished %s): showing its results from the run folder, "
                     "nothing is recomputed or written (recompute=True computes it again)",
                     stage, self.run_dir, record.get("finished_at"))
            return
        if missing:
            raise StageNotReadyError(needs_message(self.stage, missing, self.params_path, self.run_dir,
                                                   self.overrides))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.folder.params, self.config.to_yaml())  # what this run folder is computed with
        if self.overrides:  # what a launched training's processes read
            self.params_path = str(self.folder.params)
        self.folder.record(stage).unlink(missing_ok=True)  # incomplete until finish()
        if recompute:  # every unit runs again, as with --force
            for path in self.folder.units(stage).glob(f"*/{UNIT_FILES['record']}"):
                path.unlink()
        log.info("stage %s: run folder %s", stage, self.run_dir)

    def stop_reusing(self, why: str) -> None:
        """Compute the stage after all (``why``: some of its units are not complete): its record
        goes until :meth:`finish` writes it again."""
        log.info("stage %s: %s; computing the stage", self.stage.name, why)
        self.reusing = False
        write_text(self.folder.params, self.config.to_yaml())
        if self.overrides:  # what a launched training's processes read
            self.params_path = str(self.folder.params)
        self.folder.record(self.stage.name).unlink(missing_ok=True)

    def _register(self, path: Path) -> Path:
        rel = self.folder.relative(path)
        if rel not in self.outputs:
            self.outputs.append(rel)
        return path

    def output(self, path: str | Path) -> Path:
        """Declare a file or folder written by other means as an output of this stage."""
        return self._register(Path(path))

    def save_table(self, key: str, frame: pd.DataFrame) -> Path:
        """Write the table ``key`` (see ``runfolder.TABLES``) atomically (not when reusing)."""
        if self.reusing:
            return self.folder.table(key)
        return self._register(write_table(self.folder.table(key), frame))

    def save_text(self, key: str, text: str) -> Path:
        """Write the text table ``key`` (a ``.tex`` entry of ``runfolder.TABLES``) atomically (not when
        reusing)."""
        if self.reusing:
            return self.folder.table(key)
        return self._register(write_text(self.folder.table(key), text))

    def read_table(self, key: str) -> pd.DataFrame:
        return read_table(self.folder.table(key))

    def save_figure(self, name: str, fig: Any) -> Path:
        """Write the figure ``name`` as PNG and PDF atomically (not when reusing: the saved PNG)."""
        if self.reusing:
            return self.folder.figure(name)
        png = save_figure(fig, self.folder.figure(name))
        self._register(save_figure(fig, png.with_suffix(".pdf")))
        return self._register(png)

    def show_figure(self, name: str, fig: Any) -> Path:
        """Save the figure ``name``, close it and display the saved PNG (rendered once), with the
        figure's title as its alternative text."""
        titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
        titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
        alt = titles[0] if titles else name.replace("_", " ")
        import matplotlib.pyplot as plt  # here: the CLI and the training workers draw no figures

        if self.reusing:  # drawn again from the same tables; the saved files stay as they are
            buffer = io.BytesIO()
            fig.savefig(buffer, dpi=100, bbox_inches="tight", format="png")
            plt.close(fig)
            display(Image(data=buffer.getvalue(), format="png", metadata={"alt": alt}))
            return self.folder.figure(name)
        path = self.save_figure(name, fig)
        plt.close(fig)
        display(Image(filename=str(path), metadata={"alt": alt}))
        return path

    def save_summary(self, data: Any) -> Path:
        """Write ``summary.json`` atomically (not when reusing)."""
        if self.reusing:
            return self.folder.summary
        return self._register(write_json(self.folder.summary, data))

    def finish(self, **summary: Any) -> dict:
        """Check every declared output exists, then write the stage record (last). A stage computed
        here with ``update_run_copy`` then replaces the run folder's executed copy of its notebook
        with one that shows these results (run again, reusing them). When reusing, the stage's
        record is returned as it is."""
        if self.reusing:
            return read_record(self.run_dir, self.stage.name) or {}
        record = write_record(self.run_dir, self.stage.name, self.config, outputs=self.outputs,
                              seconds=time.perf_counter() - self.started, summary=summary)
        if self.update_run_copy:
            error = execute_notebook(self.stage, self.folder, notebooks=NOTEBOOKS_DIR, kernel=ensure_kernel(),
                                     progress=False, parameters={"update_run_copy": False})
            if error:  # the stage is not done until its copy is: the next run computes it again
                self.folder.record(self.stage.name).unlink(missing_ok=True)
                raise StudyError(f"the run folder's copy of {self.stage.notebook} failed ({error}); the stage is "
                                 f"left incomplete: {self.folder.executed(self.stage.notebook)} shows the error")
            log.info("stage %s: its executed copy %s is replaced; report.html is out of date until the next "
                     "xnli-study run --params %s --out %s", self.stage.name,
                     self.folder.relative(self.folder.executed(self.stage.notebook)), self.folder.params, self.run_dir)
        return record
