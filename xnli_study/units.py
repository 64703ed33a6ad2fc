"""Units of work inside a stage: one (condition, seed) training, one checkpoint's alignment.

A unit is keyed by the settings it reads and the keys of the units it builds on, so every key
follows from the params alone: adding a seed adds units and leaves the others' keys as they were,
and a setting that only some units read changes only their keys. Each unit writes its outputs,
then its record (``units/<stage>/<unit>/record.json``, last); a rerun skips every unit whose
record has the same key and whose outputs exist, and says why each of the others runs
("new seed 2", "training.mnli.learning_rate changed"). A stage is complete when all its units
are (its own record in ``stages/`` comes after them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import StudyConfig, settings_hash
from .files import read_json, write_json
from .provenance import local_data
from .runfolder import RunFolder
from .stages import STAGE_BY_NAME, now
from .tasks import get_task

#: stages made of units; the others are one piece of work each
UNIT_STAGES = ("intermediate", "transfer", "alignment")

#: settings of the intermediate stage that only the alignment tasks read (parallel_align drops
#: pairs that hold an XNLI sentence and defaults to the headline layer; both read the languages)
ALIGNMENT_TASK_READS = ("xnli", "languages", "alignment.headline_layer")


@dataclass(frozen=True)
class Unit:
    """One unit: its stage, name (``sst2-seed0``, ``final-none-seed1``, ``pretrained``), what it
    trains or measures, the settings it reads and the units it builds on."""

    stage: str
    name: str
    condition: str
    seed: int | None
    #: for alignment units: which encoder ("pretrained", "intermediate" or "final")
    checkpoint: str | None = None
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    upstream: dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # "stage/unit" -> key

    @property
    def key(self) -> str:
        return settings_hash({"stage": self.stage, "unit": self.name, "settings": self.settings,
                              "upstream": self.upstream})

    @property
    def label(self) -> str:
        return f"{self.stage}/{self.name}"


def unit_name(condition: str, seed: int, checkpoint: str | None = None) -> str:
    return "-".join(([checkpoint] if checkpoint else []) + [condition, f"seed{seed}"])


#: the local files (by the params key that names them) each kind of unit reads
INPUTS = {"intermediate": ("encoder.name",), "alignment_task": ("xnli.path", "xnli.labels_from"),
          "transfer": ("encoder.name", "mnli.path", "xnli.path", "xnli.labels_from"),
          "alignment": ("encoder.name", "xnli.path", "xnli.labels_from")}


def input_digests(config: StudyConfig) -> dict[str, str]:
    """A digest of the content of each local data file or folder, and of a local encoder folder,
    that the params name, by the params key naming it: units that read a file run again when it
    changes, though no setting did."""
    return {key: settings_hash(entry["sha256"]) for key, entry in local_data(config).items()}


def _inputs(digests: dict[str, str], keys) -> dict[str, str]:
    return {f"inputs.{key}": digests[key] for key in keys if key in digests}


def _stage_settings(config: StudyConfig, stage: str, *, drop: tuple[str, ...]) -> dict[str, Any]:
    reads = tuple(r for r in STAGE_BY_NAME[stage].reads if r not in ("conditions", "seeds", "tasks") + drop)
    return config.settings(reads)


def _task_settings(config: StudyConfig, condition: str) -> dict[str, Any]:
    """The settings of task ``condition`` (its defaults where the params leave it out), with its
    path resolved as the stage fingerprints resolve it."""
    listed = config.settings(("tasks",))
    prefix = f"tasks.{condition}."
    mine = {k: v for k, v in listed.items() if k.startswith(prefix)}
    if mine:
        return mine
    return {prefix + k: v for k, v in config.task_data(condition).model_dump().items()}


def plan_units(config: StudyConfig, digests: dict[str, str] | None = None) -> dict[str, list[Unit]]:
    """Every unit of the params, by stage, in the order the stages run them. ``digests``: the
    content digests of the local files (:func:`input_digests`, computed when not given)."""
    digests = input_digests(config) if digests is None else digests
    intermediate = {}
    for cond in config.intermediate_conditions:
        aligning = get_task(cond).is_alignment
        drop = () if aligning else ALIGNMENT_TASK_READS
        files = INPUTS["intermediate"] + (f"tasks.{cond}.path",) + (INPUTS["alignment_task"] if aligning else ())
        settings = {**_stage_settings(config, "intermediate", drop=drop), **_task_settings(config, cond),
                    **_inputs(digests, files)}
        for seed in config.seeds:
            unit = Unit("intermediate", unit_name(cond, seed), cond, seed, settings=settings)
            intermediate[(cond, seed)] = unit
    transfer = {}
    base = {**_stage_settings(config, "transfer", drop=()), **_inputs(digests, INPUTS["transfer"])}
    for cond in config.conditions:
        for seed in config.seeds:
            before = intermediate.get((cond, seed))
            upstream = {before.label: before.key} if before else {}
            transfer[(cond, seed)] = Unit("transfer", unit_name(cond, seed), cond, seed, settings=base,
                                          upstream=upstream)
    measured = {**_stage_settings(config, "alignment", drop=()), **_inputs(digests, INPUTS["alignment"])}
    alignment = [Unit("alignment", "pretrained", "-", None, checkpoint="pretrained", settings=measured)]
    for kind, built_on in (("intermediate", intermediate), ("final", transfer)):
        for (cond, seed), before in built_on.items():
            alignment.append(Unit("alignment", unit_name(cond, seed, kind), cond, seed, checkpoint=kind,
                                  settings=measured, upstream={before.label: before.key}))
    return {"intermediate": list(intermediate.values()), "transfer": list(transfer.values()),
            "alignment": alignment}


def stage_units(config: StudyConfig, stage: str) -> list[Unit]:
    return plan_units(config).get(stage, [])


def read_unit(run_dir: str | Path, unit: Unit) -> dict | None:
    try:
        return read_json(RunFolder(run_dir).unit(unit.stage, unit.name, "record"))
    except (OSError, ValueError):
        return None


def unit_status(run_dir: str | Path, unit: Unit, *, siblings: list[Unit] | None = None) -> str | None:
    """None when ``unit`` is complete (same key, every output present); else why it must run."""
    folder = RunFolder(run_dir)
    record = read_unit(run_dir, unit)
    if record is None:
        return _why_new(folder, unit, siblings or [])
    if record.get("key") != unit.key:
        return _why_changed(record, unit)
    missing = [rel for rel in record.get("outputs", []) if not (folder.root / rel).exists()]
    if missing:
        return f"output missing: {missing[0]}"
    return None


def _why_new(folder: RunFolder, unit: Unit, siblings: list[Unit]) -> str:
    done = [u for u in siblings if u != unit and (folder.unit(u.stage, u.name, "record")).is_file()]
    if unit.seed is not None and done and all(u.seed != unit.seed for u in done):
        return f"new seed {unit.seed}"
    if unit.condition != "-" and done and all(u.condition != unit.condition for u in done):
        return f"new condition {unit.condition}"
    return "not run yet"


def _why_changed(record: dict, unit: Unit) -> str:
    old, new = record.get("settings", {}), unit.settings
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    changed = [f"the file of {k.removeprefix('inputs.')}" if k.startswith("inputs.") else k for k in changed]
    if changed:
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        return f"{', '.join(changed[:3])}{more} changed"
    moved = sorted(k for k, v in unit.upstream.items() if record.get("upstream", {}).get(k) != v)
    if moved:
        return f"{', '.join(moved)} changed"
    return "made by another version of the tool"


def write_unit(run_dir: str | Path, unit: Unit, *, outputs: list[str], data: dict, seconds: float) -> dict:
    """Write ``unit``'s record, last: every output (relative to the run folder) must exist."""
    folder = RunFolder(run_dir)
    missing = [rel for rel in outputs if not (folder.root / rel).exists()]
    if missing:
        raise RuntimeError(f"unit {unit.label}: outputs missing: {', '.join(missing)}")
    record = {"stage": unit.stage, "unit": unit.name, "key": unit.key, "settings": unit.settings,
              "upstream": unit.upstream, "finished_at": now(), "seconds": round(seconds, 2),
              "outputs": outputs, "data": data}
    write_json(folder.unit(unit.stage, unit.name, "record"), record)
    return record


def describe(run_dir: str | Path, units: list[Unit], *, force: bool = False) -> tuple[list[Unit], list[str]]:
    """``(units to run, one line per reason saying which units run for it)``."""
    todo, reasons = [], {}
    for unit in units:
        why = "--force" if force else unit_status(run_dir, unit, siblings=units)
        if why:
            todo.append(unit)
            reasons.setdefault(why, []).append(unit.name)
    return todo, [f"{why}: {', '.join(names)}" for why, names in reasons.items()]
