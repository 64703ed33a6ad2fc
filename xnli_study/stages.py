"""The study's stages, their completion records, and the handle a stage notebook works through.

A stage counts as complete when its record (``RunFolder.record(stage)``) exists, was written for
the same settings (a fingerprint of the settings the stage reads) and the same upstream runs,
and every output it lists exists; the record is the last thing a stage writes. Five stages are
notebooks; the last, ``render``, turns the executed notebooks into ``report.html`` and has its
own record, so a failed render is retried by the next run.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

from .config import NOT_FINGERPRINTED, StudyConfig, load_params, settings_hash
from .provenance import input_digests
from .errors import StageNotReadyError, StudyError
from .files import read_json, read_table, save_figure, write_json, write_table, write_text
from .runfolder import RunFolder

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
        self.stage = get_stage(stage)
        self.params_path = str(params_path)
        self.config = at_run_dir(load_params(params_path), run_dir)
        self.run_dir = self.config.run_dir
        self.folder = RunFolder(self.run_dir)
        self.outputs: list[str] = []
        self.started = time.perf_counter()
        missing = incomplete_needs(self.config, self.run_dir, stage)
        if missing:
            raise StageNotReadyError(needs_message(self.stage, missing, self.params_path, self.run_dir))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.folder.params.exists():
            write_text(self.folder.params, self.config.to_yaml())
        self.folder.record(stage).unlink(missing_ok=True)  # incomplete until finish()
        log.info("stage %s: run folder %s", stage, self.run_dir)

    def _register(self, path: Path) -> Path:
        rel = self.folder.relative(path)
        if rel not in self.outputs:
            self.outputs.append(rel)
        return path

    def output(self, path: str | Path) -> Path:
        """Declare a file or folder written by other means as an output of this stage."""
        return self._register(Path(path))

    def save_table(self, key: str, frame: pd.DataFrame) -> Path:
        """Write the table ``key`` (see ``runfolder.TABLES``) atomically."""
        return self._register(write_table(self.folder.table(key), frame))

    def read_table(self, key: str) -> pd.DataFrame:
        return read_table(self.folder.table(key))

    def save_figure(self, name: str, fig: Any) -> Path:
        """Write the figure ``name`` as PNG atomically."""
        return self._register(save_figure(fig, self.folder.figure(name)))

    def show_figure(self, name: str, fig: Any) -> Path:
        """Save the figure ``name``, close it and display the saved PNG (rendered once), with the
        figure's title as its alternative text."""
        titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) else []
        titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
        alt = titles[0] if titles else name.replace("_", " ")
        path = self.save_figure(name, fig)
        plt.close(fig)
        display(Image(filename=str(path), metadata={"alt": alt}))
        return path

    def save_summary(self, data: Any) -> Path:
        """Write ``summary.json`` atomically."""
        return self._register(write_json(self.folder.summary, data))

    def finish(self, **summary: Any) -> dict:
        """Check every declared output exists, then write the stage record (last)."""
        return write_record(self.run_dir, self.stage.name, self.config, outputs=self.outputs,
                            seconds=time.perf_counter() - self.started, summary=summary)
