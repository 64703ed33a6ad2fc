"""The study's stages as functions: what each notebook calls, one function per stage.

Each function takes a :class:`~xnli_study.pipeline.StageRun` (config, run folder, writers), does the
stage's work, writes its tables and returns them for the notebook to show and plot.

Where each model and table lives in the run folder is :mod:`xnli_study.runfolder`'s business:
P (for the tiny encoder), I_t (the encoder only; the task head is dropped) and F_t (encoder + NLI
head, selected on English dev).
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import alignment as al
from .data import ReadReport, load_mnli, load_xnli, nli_as_pairs
from .errors import DataError, UnitsFailed
from .evaluation import accuracy_table, mean_over_seeds, predict, predictions_table, transfer_summary
from .languages import NLI_LABELS, encoder_label
from .contrastive import layer_embedder, pair_retrieval
from .models import (load_encoder, load_nli_start, load_task_model, load_tokenizer, pick_device, remove_model,
                     removed_note, save_encoder, save_model, weights_fingerprint)
from .pretraining import prepare_pretrained
from .qa import evaluate_spans
from .files import read_table, write_json, write_table, write_text
from .runfolder import RunFolder
from .tasks import get_task, load_task
from .progress import StageProgress
from .training import Tracking, fine_tune, is_main_process, world_size
from .launch import run_launched
from .sidebyside import run_side_by_side
from .stages import now
from .units import Unit, chains, describe, read_unit, stage_units, unit_status, write_unit

log = logging.getLogger("xnli_study")


@dataclass(frozen=True)
class UnitsRun:
    """A unit stage's units run without its notebook (a shard): what :func:`run_units` and
    :func:`unit_work` need of a :class:`~xnli_study.stages.StageRun`."""

    config: object
    run_dir: Path
    stage: object  # the Stage
    params_path: str


def model_dir(run_dir: Path, condition: str, seed: int, kind: str) -> Path:
    return RunFolder(run_dir).model(condition, seed, kind)


# ---- stage 1: data -----------------------------------------------------------------------------
def inspect_data(run) -> dict[str, pd.DataFrame]:
    """Load every data source, prepare P, and describe the data: counts, balance, lengths, parallelism."""
    config, run_dir = run.config, run.run_dir
    splits = sorted({"dev", config.xnli.eval_split, config.alignment.probe_split})
    xnli = {split: load_xnli(config, split=split, run_dir=run_dir) for split in splits}
    mnli_report = ReadReport(f"mnli:{config.mnli.source}")
    mnli = load_mnli(config, run_dir=run_dir, report=mnli_report)
    task_reports = {name: ReadReport(f"task:{name}") for name in config.intermediate_conditions}
    tasks = {name: load_task(name, config, run_dir=run_dir, report=task_reports[name])
             for name in config.intermediate_conditions}

    name = prepare_pretrained(config)  # the tiny encoder: pretrained once, cached by content
    tokenizer = load_tokenizer(name, revision=config.encoder.revision, trust_remote_code=config.encoder.trust_remote_code)

    counts, lengths = [], []
    unk = tokenizer.unk_token_id
    for split, frame in xnli.items():
        for lang, group in frame.groupby("lang", sort=False):
            labels = group["label"].map(dict(enumerate(NLI_LABELS))).fillna("unlabelled")
            row = {"split": split, "lang": lang, "items": len(group),
                   "distinct_premises": group["premise_id"].nunique(),
                   "duplicate_pairs": int(group.duplicated(subset=["premise", "hypothesis"]).sum())}
            row.update({name: int((labels == name).sum()) for name in (*NLI_LABELS, "unlabelled")})
            counts.append(row)
            for field in ("premise", "hypothesis"):
                texts_f = group[field].unique() if field == "premise" else group[field]
                ids = tokenizer(list(texts_f), add_special_tokens=False)["input_ids"]
                n_tokens = np.array([len(x) for x in ids])
                n_words = np.array([max(1, len(t.split())) for t in texts_f])
                unk_share = (sum(int(np.sum(np.array(x) == unk)) for x in ids) / max(1, n_tokens.sum())
                             if unk is not None else 0.0)
                lengths.append({"split": split, "lang": lang, "field": field,
                                "sentences": len(texts_f), "mean_tokens": float(n_tokens.mean()),
                                "p95_tokens": float(np.percentile(n_tokens, 95)),
                                "tokens_per_word": float((n_tokens / n_words).mean()),
                                "unk_share": float(unk_share)})
    def where(source: str, path: str | None) -> str:
        return str(config.data_path(path).name) if source == "local" and path else source

    training = [{"dataset": "mnli", "format": "pair", "source": where(config.mnli.source, config.mnli.path),
                 "rows_read": mnli_report.rows_read, "dropped_no_consensus": mnli_report.dropped_no_consensus,
                 "dropped_unusable": mnli_report.dropped_unusable, "used": len(mnli),
                 **_balance(mnli["label"], NLI_LABELS)}]
    for task_name, frame in tasks.items():
        spec, report = get_task(task_name), task_reports[task_name]
        training.append({"dataset": task_name, "format": spec.format,
                         "source": where(config.task_data(task_name).source, config.task_data(task_name).path),
                         "rows_read": report.rows_read,
                         "dropped_no_consensus": report.dropped_no_consensus,
                         "dropped_unusable": report.dropped_unusable,
                         "dropped_eval_overlap": report.dropped_eval_overlap, "used": len(frame),
                         **(_balance(frame["label"], spec.label_names) if "label" in frame else {})})
    parallel = _parallel_summary(xnli)
    tables = {
        "xnli_counts": pd.DataFrame(counts), "token_lengths": pd.DataFrame(lengths),
        "training_data": _int_counts(pd.DataFrame(training)), "parallel": parallel,
    }
    for key, frame in tables.items():
        run.save_table(key, frame)
    examples = (xnli["dev"].groupby("lang", sort=False).head(1)[["lang", "premise", "hypothesis", "label"]]
                .assign(label=lambda f: f["label"].map(dict(enumerate(NLI_LABELS))).fillna("unlabelled"))
                .reset_index(drop=True))
    run.save_table("xnli_examples", examples)
    tables["examples"] = examples
    return tables


def _int_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts as integers (a label absent from one dataset is 0, not NaN)."""
    counts = [c for c in frame.columns if c not in ("dataset", "format", "source")]
    frame[counts] = frame[counts].fillna(0).astype(int)
    return frame


def _balance(labels: pd.Series, names) -> dict[str, int]:
    return {f"label_{n}": int((labels == i).sum()) for i, n in enumerate(names)}


def _parallel_summary(xnli: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for split, frame in xnli.items():
        ids = frame.groupby("lang", sort=False)["id"].apply(tuple)
        labels = frame.groupby("lang", sort=False)["label"].apply(tuple)
        rows.append({"split": split, "languages": len(ids),
                     "same_items_in_every_language": bool(ids.nunique() == 1),
                     "same_labels_in_every_language": bool(labels.nunique() == 1),
                     "items_per_language": len(ids.iloc[0])})
    return pd.DataFrame(rows)


# ---- stage 2: intermediate training ------------------------------------------------------------
HELDOUT_METRIC = {"single": "accuracy", "pair": "accuracy", "multiple_choice": "choice accuracy",
                  "extractive_qa": "exact_match", "parallel": "retrieval en->x", "lexicon": "word retrieval en->x"}


def heldout_split(data: pd.DataFrame, spec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, held)``: a seeded tenth held out for monitoring (none below 20 examples). Alignment
    pairs are held out by their English side, so that no held-out English sentence or word is seen
    in training with any language."""
    if len(data) < 20:
        return data, data.iloc[:0]
    if spec.is_alignment:
        groups = data["group"].drop_duplicates()
        held_groups = set(groups.sample(frac=0.1, random_state=seed))
        held = data[data["group"].isin(held_groups)]
    else:
        held = data.sample(frac=0.1, random_state=seed)
    return data.drop(held.index), held


def pending_units(run) -> tuple[list[Unit], list[Unit]]:
    """``(every unit of the stage, those to run)``; logs which run and why, and which are reused."""
    units = stage_units(run.config, run.stage.name)
    todo, why = describe(run.run_dir, units)
    if todo and getattr(run, "reusing", False):  # a complete stage whose units are not all there
        run.stop_reusing(f"{len(todo)} of its units are not complete")
    if todo:
        log.info("stage %s: %d of %d units to run (%s)", run.stage.name, len(todo), len(units), "; ".join(why))
    if len(todo) < len(units):
        log.info("stage %s: %d units complete, reused", run.stage.name, len(units) - len(todo))
    return units, todo


def resume_folder(run_dir: Path, unit: Unit) -> Path:
    """The folder of ``unit``'s mid-training checkpoints. Checkpoints left by a run of the same
    unit key are kept (training resumes from the last); any others are deleted. Only the main
    process of a data-parallel launch touches it (the launcher prepared it already)."""
    folder = RunFolder(run_dir).unit(unit.stage, unit.name, "checkpoints")
    key_file = RunFolder(run_dir).unit(unit.stage, unit.name, "checkpoint_key")
    if not is_main_process():
        return folder
    if folder.exists() and (not key_file.is_file() or key_file.read_text().strip() != unit.key):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(key_file, unit.key)
    return folder


def tracking(config, run_dir: Path, unit: Unit) -> Tracking:
    """Where a unit's training reports its logs (``training.report_to``): TensorBoard event files
    in the run folder's ``logs/<stage>/<unit>/``, and the run name other trackers show."""
    return Tracking(report_to=tuple(config.training.report_to), name=f"{config.run_name}/{unit.stage}/{unit.name}",
                    log_dir=RunFolder(run_dir).logs(unit.stage, unit.name))


def finish_unit(run_dir: Path, unit: Unit, *, started: float, outputs: list[Path],
                tables: dict[str, pd.DataFrame], data: dict) -> None:
    """Write a unit's own tables, then its record (last), then drop its checkpoints."""
    folder = RunFolder(run_dir)
    paths = [write_table(folder.unit(unit.stage, unit.name, key), frame) for key, frame in tables.items()]
    write_unit(run_dir, unit, outputs=[folder.relative(p) for p in [*outputs, *paths]], data=data,
               seconds=time.perf_counter() - started)
    shutil.rmtree(folder.unit(unit.stage, unit.name, "checkpoints"), ignore_errors=True)


def unit_words(unit: Unit) -> str:
    """What a unit is, for the progress lines: ``sst2, seed 1`` or ``F[sst2], seed 1`` or ``P``."""
    if unit.checkpoint == "pretrained":
        return "P"
    what = unit.condition if unit.stage != "alignment" else encoder_label(unit.checkpoint, unit.condition, None)
    return f"{what}, seed {unit.seed}"


def one_line(err: BaseException) -> str:
    """An error as the one line a failed unit's record and the stage's message give."""
    return " ".join(f"{type(err).__name__}: {err}".split())


def units_side_by_side(config) -> bool:
    """Whether the training units run in worker processes side by side: ``distributed.unit_processes``
    above 1 and no data-parallel launch."""
    return config.distributed.unit_processes > 1 and not config.distributed.launched


def side_by_side(config, stage: str, todo: list[Unit]) -> bool:
    """Whether ``todo`` runs in worker processes side by side (:mod:`xnli_study.sidebyside`): a
    training stage with :func:`units_side_by_side` (even for one unit left to run, so that every
    unit of the stage trains with the same thread count)."""
    return stage in TRAINING_STAGES and units_side_by_side(config) and len(todo) > 0


def train_ahead(config, run_dir: Path, params_path: str | Path, stages: list[str]) -> dict[str, list[str]]:
    """Train the units of the training ``stages`` still to run in one set of side-by-side workers
    (``distributed.unit_processes``), before their stage notebooks: what ``xnli-study run`` does.

    Each worker takes whole chains, a (condition, seed)'s intermediate unit and then the MNLI unit
    that builds on it, dealt round-robin, so no worker waits for another and the workers start once
    for both stages instead of once per stage. The progress lines are the stages' own. The stage
    notebooks then find these units complete and put their stages together; a unit that failed
    here (or builds on one that did) is left to its notebook, which runs it again and reports it.
    Returns the names of the units it set out to train, by stage (nothing when units do not run
    side by side).
    """
    folder = RunFolder(run_dir)
    todo = {stage: [u for u in stage_units(config, stage) if unit_status(run_dir, u) is not None]
            for stage in stages if stage in TRAINING_STAGES}
    if not any(side_by_side(config, stage, units) for stage, units in todo.items()):
        return {}
    processes = config.distributed.unit_processes
    # the chains with a unit to train, in the study's order, dealt in turn: a rerun that adds a seed
    # shares that seed's chains between the workers too
    order = [chain for chain in chains(config)
             if any((u.condition, u.seed) == chain for units in todo.values() for u in units)]
    chain_of = {chain: i for i, chain in enumerate(order)}
    shares: list[list[str]] = [[] for _ in range(processes)]
    by_label: dict[str, Unit] = {}
    for units in todo.values():  # stage by stage: a worker's MNLI unit comes after its intermediate one
        for unit in units:
            shares[chain_of[(unit.condition, unit.seed)] % processes].append(unit.label)
            by_label[unit.label] = unit
    reports: dict[str, StageProgress] = {}

    def report(unit: Unit) -> StageProgress:
        if unit.stage not in reports:  # each stage's clock starts with its first unit
            reports[unit.stage] = StageProgress(unit.stage, len(todo[unit.stage]))
        return reports[unit.stage]

    def started(label: str) -> None:
        report(by_label[label]).start(unit_words(by_label[label]))

    def finished(label: str, reason: str | None) -> None:
        unit = by_label[label]
        if reason is None and unit_status(run_dir, unit) is not None:
            reason = "its worker reported it done without its record"
        if reason is not None:
            log.warning("unit %s did not complete (%s); its stage notebook runs it again (output: %s)", label,
                        reason, folder.relative(folder.unit(unit.stage, unit.name, "launch_log")))
        report(unit).done(unit_words(unit), failed=reason is not None)

    run_side_by_side(params_path=params_path, run_dir=run_dir, stage=None, names=list(by_label),
                     processes=processes, shares=shares,
                     log_of=lambda label: folder.unit(by_label[label].stage, by_label[label].name, "launch_log"),
                     on_start=started, on_finish=finished)
    return {stage: [u.name for u in units] for stage, units in todo.items() if units}


def run_units(run, units: list[Unit], todo: list[Unit], work) -> None:
    """``work(unit, progress)`` for each unit to run, reporting each (:mod:`xnli_study.progress`). A unit that fails (an exception, out of memory, a
    non-finite loss) is recorded as failed with its reason (``units/<stage>/<unit>/failed.json``)
    and the others go on; then the stage fails naming every failed unit. A rerun runs only those
    (the others are complete)."""
    folder = RunFolder(run.run_dir)
    failed: dict[str, str] = {}
    progress = StageProgress(run.stage.name, len(todo))

    def fail(unit: Unit, reason: str, trace: str) -> None:
        write_json(folder.unit(unit.stage, unit.name, "failed"),
                   {"unit": unit.label, "error": reason, "at": now(), "traceback": trace})
        log.error("unit %s failed: %s", unit.label, reason)
        failed[unit.name] = reason

    for unit in todo:
        folder.unit(unit.stage, unit.name, "failed").unlink(missing_ok=True)
    if side_by_side(run.config, run.stage.name, todo):
        by_name = {unit.name: unit for unit in todo}

        def finished(name: str, reason: str | None) -> None:
            unit = by_name[name]
            output = folder.relative(folder.unit(unit.stage, name, "launch_log"))
            if reason is None and unit_status(run.run_dir, unit) is not None:
                reason = f"its worker reported it done without its record (output: {output})"
            if reason is not None:
                fail(unit, reason, f"see {output}")
            progress.done(unit_words(unit), failed=reason is not None)

        run_side_by_side(params_path=run.params_path, run_dir=run.run_dir, stage=run.stage.name,
                         names=list(by_name), processes=run.config.distributed.unit_processes,
                         log_of=lambda name: folder.unit(run.stage.name, name, "launch_log"),
                         on_start=lambda name: progress.start(unit_words(by_name[name])), on_finish=finished)
        todo = []
    for unit in todo:
        progress.start(unit_words(unit))
        try:
            work(unit, progress.step)
        except Exception as err:  # noqa: BLE001 - every failure of one unit is recorded, then reported
            fail(unit, one_line(err), traceback.format_exc())
        progress.done(unit_words(unit), failed=unit.name in failed)
    if failed:
        listed = "; ".join(f"{name} ({reason})" for name, reason in failed.items())
        raise UnitsFailed(
            f"{len(failed)} of {len(units)} units of stage {run.stage.name} failed: {listed}. The other units are "
            "complete and kept; fix the cause and run the same command again: only the failed units run "
            f"(details in {folder.relative(folder.units(run.stage.name))}/<unit>/failed.json)")


def unit_results(run, units: list[Unit], table: str | None = None) -> tuple[list[dict], list[pd.DataFrame]]:
    """Every unit's data (from its record) and, with ``table``, its table; the unit's outputs
    become the stage's."""
    folder = RunFolder(run.run_dir)
    data, tables = [], []
    for unit in units:
        record = read_unit(run.run_dir, unit)
        if record is None or record.get("key") != unit.key:
            raise DataError(f"unit {unit.label} has no record for these params; run the stage again")
        for rel in record["outputs"]:
            run.output(folder.root / rel)
        data.append(record["data"])
        if table:
            tables.append(read_table(folder.unit(unit.stage, unit.name, table)))
    return data, tables


def train_intermediate(run) -> dict[str, pd.DataFrame]:
    """Fine-tune P on each intermediate task with every seed; save the encoder only. Each (task,
    seed) is a unit: one already complete for these settings is reused."""
    units, todo = pending_units(run)
    run_units(run, units, todo, unit_work(run, todo))
    data, logs = unit_results(run, units, "log")
    log_table = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(
        columns=["condition", "seed", "step", "epoch", "loss"])
    tables = {"intermediate_log": log_table, "intermediate_results": pd.DataFrame(
        [d["result"] for d in data], columns=INTERMEDIATE_RESULTS)}
    for key, frame in tables.items():
        run.save_table(key, frame)
    return tables


def intermediate_inputs(config, run_dir: Path, todo: list[Unit]) -> dict:
    """What the intermediate units to run read: P's name, its tokenizer, each task's data (read
    once, not once per seed; parallel_align also reads XNLI for its overlap check)."""
    p_name = prepare_pretrained(config)
    tokenizer = load_tokenizer(p_name, revision=config.encoder.revision,
                               trust_remote_code=config.encoder.trust_remote_code)
    tasks = {cond: load_task(cond, config, run_dir=run_dir) for cond in dict.fromkeys(u.condition for u in todo)}
    return {"p_name": p_name, "tokenizer": tokenizer, "tasks": tasks}


def intermediate_unit(config, run_dir: Path, unit: Unit, inputs: dict, *, progress=None) -> None:
    """Train one (task, seed) unit, save its encoder, score it on the held-out tenth, record it.
    In a data-parallel launch every process trains; only the main one goes on after training."""
    p_name, tokenizer = inputs["p_name"], inputs["tokenizer"]
    cond, seed = unit.condition, unit.seed
    spec = get_task(cond)
    data = inputs["tasks"][cond]
    train, held = heldout_split(data, spec, seed)
    log.info("intermediate %s, seed %d: %d training examples", cond, seed, len(train))
    model = load_task_model(p_name, task_format=spec.format, label_names=spec.label_names, seed=seed,
                            revision=config.encoder.revision, trust_remote_code=config.encoder.trust_remote_code)
    contrastive = None
    if spec.is_alignment:
        contrastive = (alignment_layer(spec, config, model), config.task_data(cond).temperature)
    started = time.perf_counter()
    result = fine_tune(model=model, tokenizer=tokenizer, train=train, seed=seed,
                       settings=config.training.intermediate, device=config.device,
                       eval_frame=held if len(held) and not spec.is_alignment else None,
                       select_best=False, task_format=spec.format, contrastive=contrastive,
                       cache_dir=RunFolder(run_dir).tokenized_cache, within=data,
                       resume_dir=resume_folder(run_dir, unit), fault_point="intermediate-checkpoint",
                       tracking=tracking(config, run_dir, unit), on_progress=progress)
    if not is_main_process():
        return
    seconds = round(time.perf_counter() - started, 2)
    out = save_encoder(result.model, tokenizer, model_dir(run_dir, cond, seed, "intermediate"))
    if spec.is_alignment:
        scores = _heldout_retrieval(result.model, p_name, tokenizer, held, contrastive[0], config)
    else:
        score, f1 = _heldout_score(result, tokenizer, held, spec, config)
        # SQuAD's exact match has no chance level
        scores = {"heldout_accuracy": score, "heldout_f1": f1, "heldout_pretrained": np.nan,
                  "chance": np.nan if spec.format == "extractive_qa" else 1 / spec.num_labels}
    row = {"condition": cond, "seed": seed, "train_examples": len(train),
           "heldout_examples": len(held), "heldout_metric": HELDOUT_METRIC[spec.format],
           **scores, "layer": contrastive[0] if contrastive else np.nan, "seconds": seconds}
    finish_unit(run_dir, unit, started=started, outputs=[out], data={"result": row},
                tables={"log": result.log.assign(condition=cond, seed=seed)})


#: columns of the intermediate results table; ``heldout_pretrained`` is P's score on the same
#: held-out pairs (alignment tasks), ``layer`` the layer an alignment task trained at
INTERMEDIATE_RESULTS = ["condition", "seed", "train_examples", "heldout_examples", "heldout_accuracy",
                        "heldout_metric", "heldout_f1", "heldout_pretrained", "chance", "layer", "seconds"]


def alignment_layer(spec, config, model) -> int:
    """The layer alignment task ``spec`` trains at, checked against the encoder's depth and the
    frozen layers (a frozen aligned layer would leave nothing to train)."""
    depth = model.config.num_hidden_layers
    layer = spec.layer(config.task_data(spec.name), depth, al.headline_layer(config.alignment.headline_layer, depth))
    if not 0 <= layer <= depth:
        raise DataError(f"tasks.{spec.name}.layer: {layer} is outside 0..{depth} (the encoder has "
                        f"{depth} layers; 0 is the embedding output)")
    frozen = config.training.intermediate.freeze_layers
    if frozen > layer:
        raise DataError(f"training.intermediate.freeze_layers: {frozen} freezes every layer up to "
                        f"tasks.{spec.name}.layer ({layer}): nothing would train; freeze at most {layer}")
    return layer


def _heldout_retrieval(model, p_name: str, tokenizer, held: pd.DataFrame, layer: int, config) -> dict:
    """Retrieval en -> x at the task's layer on the held-out pairs (mean over languages), after
    training and for P, with its chance level (the mean of 1 / pairs per language)."""
    if not len(held):
        return {"heldout_accuracy": np.nan, "heldout_f1": np.nan, "heldout_pretrained": np.nan, "chance": np.nan}
    settings = config.training.intermediate
    scores = {}
    for key, encoder in (("heldout_accuracy", model),
                         ("heldout_pretrained", load_encoder(p_name, revision=config.encoder.revision,
                                                             trust_remote_code=config.encoder.trust_remote_code))):
        embed = layer_embedder(encoder, tokenizer, layer=layer, max_length=settings.max_length,
                               batch_size=settings.eval_batch_size, device=pick_device(config.device))
        table = pair_retrieval(embed, held)
        scores[key] = float(table["retrieval"].mean())
    return {**scores, "heldout_f1": np.nan, "chance": float(table["chance"].mean())}


def _heldout_score(result, tokenizer, held: pd.DataFrame, spec, config) -> tuple[float, float]:
    """A task's score on its held-out tenth after training: accuracy (classification, multiple
    choice: the last evaluation); for extractive QA, SQuAD exact match and F1 per question."""
    if not len(held):
        return np.nan, np.nan
    if spec.format == "extractive_qa":
        scores = evaluate_spans(result.model, tokenizer, held, max_length=config.training.intermediate.max_length,
                                unanswerable=spec.unanswerable, device=config.device,
                                batch_size=config.training.intermediate.eval_batch_size)
        return scores["exact_match"], scores["f1"]
    evals = result.log["eval_accuracy"].dropna() if "eval_accuracy" in result.log else pd.Series(dtype=float)
    return (float(evals.iloc[-1]) if len(evals) else np.nan), np.nan


# ---- stage 3: MNLI fine-tuning and zero-shot XNLI ------------------------------------------------
def train_and_evaluate_transfer(run) -> dict[str, pd.DataFrame]:
    """For every condition and seed: I_t + fresh head on English MNLI, selected on English dev;
    then zero-shot evaluation on every language. Keeps per-example predictions. Each (condition,
    seed) is a unit: one already complete for these settings is reused."""
    units, todo = pending_units(run)
    run_units(run, units, todo, unit_work(run, todo))
    data, predictions = unit_results(run, units, "predictions")
    logs = [read_table(RunFolder(run.run_dir).unit(u.stage, u.name, "log")) for u in units]
    preds = pd.concat(predictions, ignore_index=True)
    acc = accuracy_table(preds)
    tables = {
        "accuracy": acc, "accuracy_mean": mean_over_seeds(acc),
        "transfer_summary": transfer_summary(acc, languages=run.config.languages),
        "mnli_log": pd.concat(logs, ignore_index=True), "selection": pd.DataFrame([d["selection"] for d in data]),
    }
    run.save_table("predictions", preds)
    for key, frame in tables.items():
        run.save_table(key, frame)
    tables["predictions"] = preds
    return tables


def transfer_inputs(config, run_dir: Path, todo: list[Unit]) -> dict:
    """What the MNLI units read: P's name and tokenizer, MNLI, English XNLI dev, the XNLI
    evaluation split (labelled)."""
    p_name = prepare_pretrained(config)
    tokenizer = load_tokenizer(p_name, revision=config.encoder.revision,
                               trust_remote_code=config.encoder.trust_remote_code)
    mnli = nli_as_pairs(load_mnli(config, run_dir=run_dir))
    dev = load_xnli(config, split="dev", run_dir=run_dir)
    dev_en = nli_as_pairs(dev[dev["lang"] == "en"])
    if (dev_en["label"] < 0).any():
        raise DataError("English XNLI dev has unlabelled rows; model selection needs labels")
    test = load_xnli(config, split=config.xnli.eval_split, run_dir=run_dir)
    if (test["label"] < 0).any():
        raise DataError(
            f"XNLI {config.xnli.eval_split} has no labels (XTREME test files carry none); evaluate on "
            "a labelled source or set xnli.eval_split: dev")
    return {"p_name": p_name, "tokenizer": tokenizer, "mnli": mnli, "dev_en": dev_en, "test": test}


def transfer_unit(config, run_dir: Path, unit: Unit, inputs: dict, *, progress=None) -> None:
    """Train one (condition, seed) on MNLI with selection on English dev, predict every XNLI
    item, record it. In a data-parallel launch only the main process goes on after training."""
    settings = config.training.mnli
    tokenizer, test = inputs["tokenizer"], inputs["test"]
    cond, seed = unit.condition, unit.seed
    encoder = None if cond == "none" else str(model_dir(run_dir, cond, seed, "intermediate"))
    model = load_nli_start(inputs["p_name"], encoder, seed=seed, label_names=NLI_LABELS,
                           revision=config.encoder.revision, trust_remote_code=config.encoder.trust_remote_code)
    started = time.perf_counter()
    result = fine_tune(model=model, tokenizer=tokenizer, train=inputs["mnli"], seed=seed,
                       settings=settings, device=config.device, eval_frame=inputs["dev_en"],
                       select_best=True, cache_dir=RunFolder(run_dir).tokenized_cache,
                       resume_dir=resume_folder(run_dir, unit), fault_point="mnli-checkpoint",
                       tracking=tracking(config, run_dir, unit), on_progress=progress)
    if not is_main_process():
        return
    devices = world_size()
    out = save_model(result.model, tokenizer, model_dir(run_dir, cond, seed, "final"))
    probs = predict(result.model, tokenizer, test, batch_size=settings.eval_batch_size,
                    max_length=settings.max_length, device=config.device, precision=settings.precision)
    row = {"condition": cond, "seed": seed, "best_step": result.best_step,
           "dev_en_accuracy": result.best_metric, "train_examples": len(inputs["mnli"]),
           "devices": devices, "effective_batch": settings.effective_batch(devices),
           "seconds": round(time.perf_counter() - started, 2)}
    finish_unit(run_dir, unit, started=started, outputs=[out], data={"selection": row},
                tables={"predictions": predictions_table(test, probs, condition=cond, seed=seed),
                        "log": result.log.assign(condition=cond, seed=seed)})


# ---- stage 4: alignment ----------------------------------------------------------------------
def removable(stage: str, save_models: str) -> bool:
    """Whether a checkpoint of ``stage`` is removed once its alignment is measured: ``all`` keeps
    every model, ``encoders`` the intermediate encoders I_t, ``none`` neither (P is never removed)."""
    return {"all": False, "encoders": stage == "final", "none": stage in ("intermediate", "final")}[save_models]


def checkpoint_path(config, run_dir: Path, unit: Unit) -> str:
    """The encoder an alignment unit measures: P, an I_t or an F_t."""
    if unit.checkpoint == "pretrained":
        return prepare_pretrained(config)
    return str(model_dir(run_dir, unit.condition, unit.seed, unit.checkpoint))


def measure_alignment(run) -> dict[str, pd.DataFrame]:
    """Every alignment metric, layer by layer and language by language, for P, each I_t, each F_t.
    Each checkpoint is a unit: one already measured for these settings is reused."""
    config, run_dir = run.config, run.run_dir
    a = config.alignment
    inputs = alignment_inputs(config, run_dir, [])
    units, todo = pending_units(run)
    run.save_table("probe_set", inputs["probe"])
    run_units(run, units, todo, unit_work(run, todo, inputs=inputs))
    data, frames = unit_results(run, units, "metrics")
    n_layers = data[0]["n_layers"]
    table = pd.concat(frames, ignore_index=True)
    cols = ["checkpoint", "stage", "condition", "seed", "layer", "lang", "metric", "value", "chance"]
    table = table[cols]
    headline = al.headline_layer(a.headline_layer, n_layers)  # from the encoder's depth
    changes = alignment_changes(table)
    run.save_table("alignment", table)
    run.save_table("alignment_changes", changes)
    return {"alignment": table, "changes": changes, "probe": inputs["probe"],
            "headline_layer": headline, "n_layers": n_layers}


def alignment_inputs(config, run_dir: Path, todo: list[Unit]) -> dict:
    """The probe set every alignment unit embeds (deduplicated parallel sentences, seeded)."""
    a = config.alignment
    xnli = load_xnli(config, split=a.probe_split, run_dir=run_dir)
    return {"probe": al.probe_set(xnli, max_sentences=a.max_sentences, seed=a.seed)}


def alignment_unit(config, run_dir: Path, unit: Unit, inputs: dict, *, progress=None) -> None:
    """Embed the probe set with one checkpoint (or read its cached vectors), measure every metric
    at every layer, record it; then remove the checkpoint where ``training.save_models`` says."""
    a = config.alignment
    started = time.perf_counter()
    path = checkpoint_path(config, run_dir, unit)
    emb = al.cached_embeddings(path, inputs["probe"], cache_dir=RunFolder(run_dir).embeddings_cache,
                               batch_size=a.batch_size, max_length=a.max_length,
                               device=config.device, trust_remote_code=config.encoder.trust_remote_code,
                               revision=config.encoder.revision if unit.checkpoint == "pretrained" else None)
    n_layers = next(iter(emb.values())).shape[0] - 1
    layers = list(range(n_layers + 1)) if a.layers == "all" else [l for l in a.layers if l <= n_layers]
    keys = {"checkpoint": encoder_label(unit.checkpoint, unit.condition, unit.seed), "stage": unit.checkpoint,
            "condition": unit.condition, "seed": -1 if unit.seed is None else unit.seed}
    frames = [al.alignment_metrics(emb, layers=layers).assign(**keys)]
    if a.language_id_sentences:
        n = next(iter(emb.values())).shape[1]
        keep = np.sort(np.random.default_rng(a.seed).permutation(n)[: a.language_id_sentences])
        frames.append(al.language_id_by_layer(emb, layers=layers, rows=keep, seed=a.seed).assign(**keys))
    if removable(unit.checkpoint, config.training.save_models) and removed_note(path) is None:
        remove_model(path, save_models=config.training.save_models,
                     weights=weights_fingerprint(load_encoder(path, trust_remote_code=config.encoder.trust_remote_code)))
    finish_unit(run_dir, unit, started=started, outputs=[], data={"n_layers": n_layers},
                tables={"metrics": pd.concat(frames, ignore_index=True)})


#: each unit stage's work: (what its units read, loaded once per run of the stage; one unit)
UNIT_WORK = {"intermediate": (intermediate_inputs, intermediate_unit),
             "transfer": (transfer_inputs, transfer_unit),
             "alignment": (alignment_inputs, alignment_unit)}
#: the stages whose units train, and so run under ``accelerate launch`` when ``distributed`` says
TRAINING_STAGES = ("intermediate", "transfer")


def unit_work(run, todo: list[Unit], *, inputs: dict | None = None):
    """``work(unit)`` for the units ``todo`` of ``run``'s stage: in this process (the inputs read
    once, on the first unit, unless the stage has them already: ``inputs``), or for a training
    stage with ``distributed`` set, each unit as ``accelerate launch`` with the configured
    processes (:mod:`xnli_study.launch`)."""
    config, run_dir, stage = run.config, run.run_dir, run.stage.name
    if stage in TRAINING_STAGES and config.distributed.launched:
        def launched(unit: Unit, progress=None) -> None:  # the workers' progress goes to launch.log
            resume_folder(run_dir, unit)
            run_launched(config, params_path=run.params_path, run_dir=run_dir, unit=unit)
            if unit_status(run_dir, unit) is not None:
                raise DataError(f"the launched training of {unit.label} ended without its record; its output: "
                                f"{RunFolder(run_dir).unit(unit.stage, unit.name, 'launch_log')}")
        return launched
    read, work = UNIT_WORK[stage]
    loaded: dict = dict(inputs or {})

    def here(unit: Unit, progress=None) -> None:
        if not loaded:
            loaded.update(read(config, run_dir, todo))
        work(config, run_dir, unit, loaded, progress=progress)
    return here


def run_one_unit(config, run_dir: Path, stage: str, name: str) -> None:
    """Run the unit ``stage/name`` of ``config`` in this process: what a launched worker does
    (``python -m xnli_study.worker``), one process of several."""
    [unit] = units_named(config, stage, [name])
    read, work = UNIT_WORK[stage]
    work(config, run_dir, unit, read(config, run_dir, [unit]))


def units_named(config, stage: str, names: list[str]) -> list[Unit]:
    """The units ``names`` of ``stage`` for ``config``; ``DataError`` naming the first unknown one."""
    units = {u.name: u for u in stage_units(config, stage)}
    unknown = [n for n in names if n not in units]
    if unknown:
        raise DataError(f"stage {stage} has no unit {unknown[0]!r} for these params; its units: {', '.join(units)}")
    return [units[n] for n in names]


def run_listed_units(config, run_dir: Path, stage: str | None, names: list[str], *, report) -> None:
    """Run the units ``names`` in this process, one after the other, each stage's inputs read once:
    what one of the processes that run units side by side does. ``names`` are unit names of
    ``stage``, or ``stage/unit`` labels (``stage`` None), listed after the units they build on.
    ``report(name, None, started=True)`` as a unit starts; ``report(name, reason)`` as it ends
    (``None``: done), ``name`` as given. A failed unit is reported and the next one runs; a unit
    that builds on one that failed here is reported as not run."""
    requests = []
    for name in names:
        where, _, unit_name = name.rpartition("/")
        if not (where or stage):
            raise DataError(f"unit {name!r}: give its stage (stage/unit) or the stage of every unit")
        requests.append((name, where or stage, unit_name))
    chosen = {}
    for where in dict.fromkeys(r[1] for r in requests):
        listed = [r[2] for r in requests if r[1] == where]
        chosen.update({(where, u.name): u for u in units_named(config, where, listed)})
    inputs: dict[str, dict] = {}
    failed: set[str] = set()
    for position, (name, where, unit_name) in enumerate(requests):
        unit = chosen[(where, unit_name)]
        broken = [label for label in unit.upstream if label in failed]
        if broken:
            failed.add(unit.label)
            report(name, f"not run: {broken[0]}, which it builds on, failed")
            continue
        read, work = UNIT_WORK[where]
        report(name, None, started=True)
        try:
            if where not in inputs:
                inputs[where] = read(config, run_dir, [u for (w, _), u in chosen.items() if w == where])
            work(config, run_dir, unit, inputs[where])
        except Exception as err:  # noqa: BLE001 - the stage records the failure and reports it
            traceback.print_exc()
            failed.add(unit.label)
            report(name, one_line(err))
        else:
            report(name, None)
        if all(r[1] != where for r in requests[position + 1:]):
            inputs.pop(where, None)  # that stage's last unit here: its data need not stay in memory


def alignment_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Changes between stages, per layer, language and metric (means over seeds):

    * ``intermediate - pretrained`` for each task (I_t minus P);
    * ``final - final[none]`` for each task (F_t minus the baseline's F, matched by seed).
    """
    key = ["layer", "lang", "metric"]
    p = table[table["stage"] == "pretrained"].set_index(key)["value"]
    rows = []
    inter = table[table["stage"] == "intermediate"]
    for cond, group in inter.groupby("condition", sort=False):
        mean = group.groupby(key)["value"].mean()
        rows.append((mean - p.reindex(mean.index)).rename("delta").reset_index()
                    .assign(condition=cond, comparison="intermediate - pretrained"))
    final = table[table["stage"] == "final"]
    base = final[final["condition"] == "none"].set_index(key + ["seed"])["value"]
    for cond, group in final[final["condition"] != "none"].groupby("condition", sort=False):
        diff = group.set_index(key + ["seed"])["value"] - base
        mean = diff.dropna().groupby(key).mean()
        rows.append(mean.rename("delta").reset_index()
                    .assign(condition=cond, comparison="final - final[none]"))
    cols = ["comparison", "condition", "layer", "lang", "metric", "delta"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)
