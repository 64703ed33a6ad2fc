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
from .provenance import input_digests
from .runfolder import RunFolder
from .stages import STAGE_BY_NAME, changed_settings, now, read_record
from .models import known_depth
from .preflight import layer_of
from .tasks import get_task

#: stages made of units; the others are one piece of work each
UNIT_STAGES = ("intermediate", "transfer", "alignment")

#: settings of the intermediate stage that only some tasks read: the alignment tasks read XNLI
#: (parallel_align drops pairs that hold an XNLI sentence) and the headline layer (their default
#: layer, keyed as the layer it resolves to); the languages are read by the tasks whose data
#: depends on them (``TaskSpec.reads_languages``)
ALIGNMENT_TASK_READS = ("xnli", "alignment.headline_layer")
#: alignment settings that change no measured value: the headline layer is chosen when the
#: stage's tables are put together, and the batch size only groups the forward passes
NOT_MEASURED = ("alignment.headline_layer", "alignment.batch_size")


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
INPUTS = {"intermediate": ("encoder.name", "encoder.tiny"), "alignment_task": ("xnli.path", "xnli.labels_from"),
          "transfer": ("encoder.name", "encoder.tiny", "mnli.path", "xnli.path", "xnli.labels_from"),
          "alignment": ("encoder.name", "encoder.tiny", "xnli.path", "xnli.labels_from")}


def _inputs(digests: dict[str, str], keys) -> dict[str, str]:
    return {f"inputs.{key}": digests[key] for key in keys if key in digests}


def _stage_settings(config: StudyConfig, stage: str, *, drop: tuple[str, ...]) -> dict[str, Any]:
    reads = tuple(r for r in STAGE_BY_NAME[stage].reads if r not in ("conditions", "seeds", "tasks"))
    return {k: v for k, v in config.settings(reads).items() if not any(k == d or k.startswith(d + ".") for d in drop)}


def _task_settings(config: StudyConfig, condition: str) -> dict[str, Any]:
    """The settings of task ``condition`` (its defaults where the params leave it out), with its
    path resolved as the stage fingerprints resolve it."""
    listed = config.settings(("tasks",))
    prefix = f"tasks.{condition}."
    mine = {k: v for k, v in listed.items() if k.startswith(prefix)}
    if mine:
        return mine
    return {prefix + k: v for k, v in config.task_data(condition).model_dump().items()}


def aligned_layer(config: StudyConfig, spec) -> int | str:
    """The layer an alignment task trains at, resolved from the encoder's depth where it is known
    without loading the model; else the settings that choose it."""
    depth = known_depth(config)
    if depth is None:
        return f"{config.task_data(spec.name).layer}|{config.alignment.headline_layer}"
    return layer_of(config, spec, depth)


def plan_units(config: StudyConfig, digests: dict[str, str] | None = None) -> dict[str, list[Unit]]:
    """Every unit of the params, by stage, in the order the stages run them. ``digests``: the
    content digests of the local files (:func:`input_digests`, computed when not given)."""
    digests = input_digests(config) if digests is None else digests
    intermediate = {}
    for cond in config.intermediate_conditions:
        spec = get_task(cond)
        drop = ("alignment.headline_layer",) + (() if spec.is_alignment else ALIGNMENT_TASK_READS)
        drop += () if spec.reads_languages else ("languages",)
        files = INPUTS["intermediate"] + (f"tasks.{cond}.path",) + (INPUTS["alignment_task"] if spec.is_alignment else ())
        settings = {**_stage_settings(config, "intermediate", drop=drop), **_task_settings(config, cond),
                    **_inputs(digests, files)}
        if spec.is_alignment:
            settings["resolved.layer"] = aligned_layer(config, spec)
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
    measured = {**_stage_settings(config, "alignment", drop=NOT_MEASURED), **_inputs(digests, INPUTS["alignment"])}
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


def unit_status(run_dir: str | Path, unit: Unit, *, previous: dict | None = None) -> str | None:
    """None when ``unit`` is complete (same key, the same runs of the units it builds on, every
    output present); else why it must run. ``previous``: the settings of the stage's last
    complete record, to tell a new seed or condition from a unit a stopped run did not reach."""
    folder = RunFolder(run_dir)
    record = read_unit(run_dir, unit)
    if record is None:
        try:
            error = read_json(folder.unit(unit.stage, unit.name, "failed"))["error"]
        except (OSError, ValueError, KeyError):
            return _why_new(unit, previous)
        return f"failed in the last run ({error[:80]})"
    if record.get("key") != unit.key:
        return _why_changed(record, unit)
    for label, finished in record.get("upstream_runs", {}).items():
        if _finished_at(run_dir, label) != finished:
            return f"{label} ran again"
    missing = [rel for rel in record.get("outputs", []) if not (folder.root / rel).exists()]
    if missing:
        return f"output missing: {missing[0]}"
    return None


def _finished_at(run_dir: str | Path, label: str) -> str | None:
    stage, _, name = label.partition("/")
    try:
        return read_json(RunFolder(run_dir).unit(stage, name, "record")).get("finished_at")
    except (OSError, ValueError):
        return None


def _why_new(unit: Unit, previous: dict | None) -> str:
    if previous:
        if unit.seed is not None and unit.seed not in previous.get("seeds", [unit.seed]):
            return f"new seed {unit.seed}"
        if unit.condition != "-" and unit.condition not in previous.get("conditions", [unit.condition]):
            return f"new condition {unit.condition}"
    return "not run yet"


def _why_changed(record: dict, unit: Unit) -> str:
    old, new = record.get("settings", {}), unit.settings
    if any(old.get(k) != new.get(k) for k in set(old) | set(new)):
        return changed_settings(old, new)
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
              "upstream": unit.upstream,
              # which run of each unit it builds on: a unit trained again makes this one stale
              "upstream_runs": {label: _finished_at(run_dir, label) for label in unit.upstream},
              "finished_at": now(), "seconds": round(seconds, 2),
              "outputs": outputs, "data": data}
    write_json(folder.unit(unit.stage, unit.name, "record"), record)
    return record


def describe(run_dir: str | Path, units: list[Unit], *, force: bool = False) -> tuple[list[Unit], list[str]]:
    """``(units to run, one line per reason saying which units run for it)``."""
    record = read_record(run_dir, units[0].stage) if units else None
    previous = (record or {}).get("settings")
    todo, reasons = [], {}
    for unit in units:
        why = "--force" if force else unit_status(run_dir, unit, previous=previous)
        if why:
            todo.append(unit)
            reasons.setdefault(why, []).append(unit.name)
    return todo, [f"{why}: {', '.join(names)}" for why, names in reasons.items()]


def chains(config: StudyConfig) -> list[tuple[str, int] | str]:
    """The chains that shards share out: each (condition, seed), whose intermediate training, MNLI
    training and alignment units build on one another, then P's alignment (``"pretrained"``)."""
    return [(cond, seed) for cond in config.conditions for seed in config.seeds] + ["pretrained"]


def shard_of(config: StudyConfig, unit: Unit, count: int) -> int:
    """Which of ``count`` shards runs ``unit``: its chain's index modulo ``count``."""
    chain = "pretrained" if unit.checkpoint == "pretrained" else (unit.condition, unit.seed)
    return chains(config).index(chain) % count
