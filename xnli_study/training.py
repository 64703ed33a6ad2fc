"""Fine-tuning with the transformers ``Trainer``: dynamic padding, length-grouped batches.

One function, :func:`fine_tune`, serves both stages: the intermediate task (monitored on a held-out
slice of its own data, last checkpoint kept) and English MultiNLI (scored on English XNLI dev, the
best checkpoint kept: model selection never sees another language).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .contrastive import PairCollator, contrastive_trainer_class, encode_aligned_pairs
from . import faults
from .errors import StudyError
from .files import atomic_dir
from .models import freeze_lower_layers, pick_device, quiet_transformers
from .qa import context_offsets, span_windows
from .tasks import ALIGNMENT_FORMATS

log = logging.getLogger("xnli_study")


@dataclass
class TrainResult:
    """The trained model and what happened during training."""

    model: object
    log: pd.DataFrame  # one row per logged step: step, epoch, loss, eval_loss, eval_accuracy
    best_step: int | None  # the selected checkpoint's step (None when the last one is kept)
    best_metric: float | None  # its selection accuracy in [0, 1]


def encode_pairs(tokenizer, frame: pd.DataFrame, *, max_length: int, with_labels: bool = True):
    """Tokenise ``text_a`` (and ``text_b`` where not empty) into a ``datasets.Dataset``.

    No padding here: the collator pads each batch to its longest member. A ``length`` column lets
    the sampler group examples of similar length.
    """
    import datasets

    a = frame["text_a"].tolist()
    b = frame["text_b"].tolist() if "text_b" in frame and (frame["text_b"] != "").any() else None
    enc = tokenizer(a, b, truncation=True, max_length=max_length)
    columns = {k: enc[k] for k in enc.keys()}
    columns["length"] = [len(ids) for ids in enc["input_ids"]]
    if with_labels:
        columns["labels"] = frame["label"].astype(int).tolist()
    return datasets.Dataset.from_dict(columns)


def encode_choices(tokenizer, frame: pd.DataFrame, *, max_length: int):
    """Tokenise a multiple-choice frame: each choice ``c`` becomes the pair
    ``(text_a, text_b + " " + c)``; every example keeps its list of encoded choices."""
    import datasets

    k = len(frame["choices"].iloc[0])
    firsts = [a for a in frame["text_a"] for _ in range(k)]
    seconds = [f"{b} {c}".strip() for b, choices in zip(frame["text_b"], frame["choices"]) for c in choices]
    try:  # cut the context, never the choice
        enc = tokenizer(firsts, seconds, truncation="only_first", max_length=max_length)
    except Exception:  # a choice alone is longer than max_length: cut both
        enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
    columns = {key: [enc[key][i:i + k] for i in range(0, len(firsts), k)] for key in enc.keys()}
    columns["length"] = [max(len(ids) for ids in group) for group in columns["input_ids"]]
    columns["labels"] = frame["label"].astype(int).tolist()
    return datasets.Dataset.from_dict(columns)


def encode_spans(tokenizer, frame: pd.DataFrame, *, max_length: int, stride: int | None = None):
    """Tokenise an extractive-QA frame into training windows over the context (question first;
    :func:`xnli_study.qa.span_windows`). Each window's target is the answer's first and last token,
    or ``[CLS]`` (0, 0) when the answer is not wholly inside it or the question has none."""
    import datasets

    enc = span_windows(tokenizer, frame, max_length=max_length, stride=stride)
    starts = frame["answer_start"].astype(int).to_numpy()
    ends = starts + frame["answer_text"].str.len().to_numpy()
    start_positions, end_positions = [], []
    for i in range(len(enc["input_ids"])):
        row = enc["overflow_to_sample_mapping"][i]
        spans = context_offsets(enc, i)
        context = [t for t, span in enumerate(spans) if span is not None]
        first, last = context[0], context[-1]
        a, b = starts[row], ends[row]
        if a < 0 or spans[first][0] > a or spans[last][1] < b:
            start_positions.append(0)
            end_positions.append(0)
            continue
        start_positions.append(next(t for t in context if spans[t][1] > a))
        end_positions.append(next(t for t in reversed(context) if spans[t][0] < b))
    columns = {key: enc[key] for key in enc.keys() if key not in ("offset_mapping", "overflow_to_sample_mapping")}
    columns["length"] = [len(ids) for ids in enc["input_ids"]]
    columns["start_positions"] = start_positions
    columns["end_positions"] = end_positions
    return datasets.Dataset.from_dict(columns)


def encode_for(fmt: str, tokenizer, frame: pd.DataFrame, *, max_length: int):
    """The training dataset of a task frame in format ``fmt`` (see ``xnli_study.tasks``)."""
    if fmt == "multiple_choice":
        return encode_choices(tokenizer, frame, max_length=max_length)
    if fmt == "extractive_qa":
        return encode_spans(tokenizer, frame, max_length=max_length)
    if fmt in ALIGNMENT_FORMATS:
        return encode_aligned_pairs(tokenizer, frame, max_length=max_length)
    return encode_pairs(tokenizer, frame, max_length=max_length)


def tokenizer_key(tokenizer) -> str:
    """A short hash that changes when the tokenizer would split text differently: its class, its
    vocabulary and rules (the fast tokenizer's full JSON), its special tokens."""
    cached = getattr(tokenizer, "_xnli_study_key", None)
    if cached:
        return cached
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        rules = json.loads(backend.to_str())
        for state in ("truncation", "padding"):  # left by the last call, not part of the tokenizer
            rules.pop(state, None)
        h.update(json.dumps(rules, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    key = h.hexdigest()[:16]
    try:
        tokenizer._xnli_study_key = key
    except AttributeError:
        pass
    return key


def frame_key(frame: pd.DataFrame) -> str:
    """A short hash of a task frame's content (columns, values, row order)."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    def as_json(value):  # lists (choices) and arrays hash as their JSON text
        return json.dumps(value.tolist() if hasattr(value, "tolist") else value, default=str)

    hashable = frame.apply(lambda col: col.map(as_json) if col.dtype == object else col)
    h.update(pd.util.hash_pandas_object(hashable, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def encode_cached(fmt: str, tokenizer, frame: pd.DataFrame, *, max_length: int,
                  cache_dir: str | Path | None = None, within: pd.DataFrame | None = None):
    """:func:`encode_for`, read from ``cache_dir`` when the same tokenizer, data, format and
    max length were encoded before (saved Arrow files, one folder per key). Every unit of a run
    that trains on MultiNLI tokenises it once; the others read it back.

    ``within``: a frame that ``frame`` is a subset of (by index), such as a task's whole data when
    ``frame`` is one seed's training rows. The whole frame is encoded (once per run) and the rows
    selected from it, so each seed's split costs no tokenising. Extractive QA, whose rows become
    several windows, is encoded as given."""
    import datasets

    if within is not None and _rows_encode_alike(fmt, frame, within):
        whole = encode_cached(fmt, tokenizer, within, max_length=max_length, cache_dir=cache_dir)
        return whole.select(within.index.get_indexer(frame.index).tolist())
    if cache_dir is None:
        return encode_for(fmt, tokenizer, frame, max_length=max_length)
    key = hashlib.sha256(f"{TOKENIZED_VERSION}|{fmt}|{max_length}|{tokenizer_key(tokenizer)}|{frame_key(frame)}"
                         .encode()).hexdigest()[:20]
    folder = Path(cache_dir) / key
    if (folder / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(folder))
    encoded = encode_for(fmt, tokenizer, frame, max_length=max_length)
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # no "Saving the dataset" bar per unit
    try:
        with atomic_dir(folder, keep_existing=True) as tmp:  # whole or absent; content-keyed
            encoded.save_to_disk(str(tmp))
    finally:
        if not quiet:
            datasets.utils.enable_progress_bars()
    return datasets.load_from_disk(str(folder))


def _rows_encode_alike(fmt: str, frame: pd.DataFrame, within: pd.DataFrame) -> bool:
    """Whether ``frame``'s rows encode as they do inside ``within``: one example per row (not
    extractive QA), every row of ``frame`` in ``within``, and the same use of ``text_b``
    (:func:`encode_pairs` leaves it out when every row of a frame has it empty)."""
    if fmt == "extractive_qa" or not frame.index.isin(within.index).all() or not within.index.is_unique:
        return False
    if "text_b" in frame and fmt not in ALIGNMENT_FORMATS and fmt != "multiple_choice":
        return bool((frame["text_b"] != "").any()) == bool((within["text_b"] != "").any())
    return True


#: bump when the encoders' output changes for the same input, so old caches are not read
TOKENIZED_VERSION = 1


def _collator(fmt: str, tokenizer, *, pad_to_multiple_of: int | None = None):
    if fmt == "multiple_choice":
        return ChoiceCollator(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    if fmt in ALIGNMENT_FORMATS:
        return PairCollator(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)


@dataclass(frozen=True)
class Schedule:
    """Optimizer steps and evaluation interval of one training run, from its effective batch."""

    effective_batch: int  # examples per optimizer step: batch x accumulation x devices
    steps_per_epoch: int  # optimizer steps
    total_steps: int
    eval_every: int  # optimizer steps between evaluations


def schedule(n_examples: int, settings, *, world_size: int = 1) -> Schedule:
    """Steps per epoch and evaluation interval counted in optimizer steps, as the ``Trainer``
    counts them: each device takes ``batch_size`` examples a batch and an optimizer step takes
    ``gradient_accumulation_steps`` batches (a last, shorter group still steps), so one step
    consumes batch x accumulation x devices."""
    batches_per_device = math.ceil(n_examples / (settings.batch_size * world_size))
    steps_per_epoch = max(1, math.ceil(batches_per_device / settings.gradient_accumulation_steps))
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    return Schedule(effective_batch=settings.effective_batch(world_size), steps_per_epoch=steps_per_epoch,
                    total_steps=total, eval_every=max(1, steps_per_epoch // settings.evals_per_epoch))


def is_main_process() -> bool:
    """Whether this process is the main one of a data-parallel launch (or a plain process): the
    only one that writes into the run folder."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def world_size(args=None) -> int:
    """Processes taking part in training: the ``Trainer``'s own count (``args.world_size``, from
    the distributed state that ``accelerate launch`` or ``torchrun`` set up), else the launcher's
    ``WORLD_SIZE``; 1 in a plain process."""
    import os

    if args is not None:
        return max(1, int(args.world_size))
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


class ChoiceCollator:
    """Pads every choice of every example in a batch to one length: ``(batch, choices, length)``."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        labels = torch.tensor([f["labels"] for f in features])
        keys = [k for k in features[0] if k not in ("labels", "length")]
        k = len(features[0]["input_ids"])
        flat = [{key: f[key][j] for key in keys} for f in features for j in range(k)]
        batch = self.tokenizer.pad(flat, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of)
        batch = {key: value.view(len(features), k, -1) for key, value in batch.items()}
        batch["labels"] = labels
        return batch


def replace_progress(trainer, progress: bool) -> None:
    """One plain-text progress bar per training run, without the Trainer's per-log printouts or
    its notebook widget (the log comes back as a table instead)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    for callback in (ProgressCallback, NotebookProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    if not progress:
        return

    class QuietProgress(ProgressCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            from tqdm import tqdm

            self.training_bar = tqdm(total=state.max_steps, desc="training", mininterval=1.0,
                                     dynamic_ncols=True, leave=False)
            self.current_step = 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            pass

    trainer.add_callback(QuietProgress(max_str_len=100))


def _accuracy(eval_pred) -> dict[str, float]:
    """Accuracy in [0, 1]: the arg-max class or choice; for extractive QA, the share of windows
    whose predicted start and end tokens both match the gold span."""
    logits, labels = eval_pred
    if isinstance(logits, (tuple, list)):
        hits = [np.asarray(lg).argmax(-1) == np.asarray(lb) for lg, lb in zip(logits, labels)]
        return {"accuracy": float(np.logical_and.reduce(hits).mean())}
    return {"accuracy": float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())}


def fine_tune(*, model, tokenizer, train: pd.DataFrame, settings, seed: int,
              device: str = "auto", eval_frame: pd.DataFrame | None = None,
              select_best: bool = False, work_dir: str | Path | None = None,
              progress: bool = True, task_format: str = "pair",
              contrastive: tuple[int, float] | None = None,
              cache_dir: str | Path | None = None, within: pd.DataFrame | None = None,
              resume_dir: str | Path | None = None, fault_point: str | None = None,
              tracking: Tracking | None = None, on_progress=None) -> TrainResult:
    """Fine-tune ``model`` on ``train`` (a task frame of ``task_format``) with ``settings``.

    Alignment formats (``parallel``, ``lexicon``) train ``model`` (an encoder without a head) by
    symmetric InfoNCE at a layer: ``contrastive=(layer, temperature)``; they take no ``eval_frame``.

    ``eval_frame`` is scored ``settings.evals_per_epoch`` times per epoch (accuracy in [0, 1]);
    with ``select_best`` the model with the best eval accuracy is returned, else the last one.
    Checkpoints live in ``resume_dir`` (the caller removes it once the outcome is saved), or without
    one in a temporary folder under ``work_dir`` that is removed afterwards. With
    ``settings.checkpoint_every`` not ``off`` each checkpoint in ``resume_dir`` is whole (weights,
    optimizer, scheduler, RNG state), and a call that finds one there resumes from the last with
    the same result as an uninterrupted run.

    Under ``accelerate launch`` (or ``torchrun``) every process calls this with the same
    arguments; the ``Trainer`` splits each optimizer step's batch between them, and only the main
    process writes checkpoints. ``fault_point`` names the point of :mod:`xnli_study.faults` just after a
    checkpoint is saved. ``tracking`` names the Trainer integrations that receive the logs
    (``report_to``: TensorBoard writes into ``tracking.log_dir``; wandb, mlflow and the others
    follow their own configuration) and the run name they show. ``on_progress(step=, max_steps=,
    epoch=, epochs=)`` is called after every optimizer step (:class:`~xnli_study.progress.StageProgress`
    reports it).
    With ``cache_dir`` the tokenised data is read from (or written to) that cache; ``within``, the
    frame that ``train`` and ``eval_frame`` were split from, is then encoded whole, once
    (:func:`encode_cached`).
    """
    from transformers import Trainer, TrainingArguments

    aligning = task_format in ALIGNMENT_FORMATS
    if aligning and (contrastive is None or eval_frame is not None):
        raise ValueError(f"format {task_format!r} needs contrastive=(layer, temperature) and no eval_frame")
    torch.manual_seed(seed)
    freeze_lower_layers(model, settings.freeze_layers)
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    resumable = resume_dir is not None and settings.checkpoint_every != "off"
    tmp = None
    if resume_dir is not None:  # one folder that every process of a data-parallel run agrees on
        out = Path(resume_dir)
        if not resumable and is_main_process():  # checkpoints for model selection only, never resumed
            shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
    else:
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        out = tmp = Path(tempfile.mkdtemp(prefix="checkpoints-", dir=work_dir))
    strategy = "steps" if eval_frame is not None else "no"
    saving = (select_best and eval_frame is not None) or resumable
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        seed=seed,
        data_seed=seed,
        # length-grouped batches, except for in-batch negatives: those should be a random draw
        train_sampling_strategy="random" if aligning else "group_by_length",
        remove_unused_columns=not aligning,
        eval_strategy=strategy,
        eval_steps=1,  # set below, once the processes are counted
        save_strategy="steps" if saving else "no",
        save_steps=1,
        # resumable: the last two, so that a run killed while saving the newest (after the Trainer
        # has rotated out the older ones) still has a whole one to resume from
        save_total_limit=2 if resumable else 1,
        save_only_model=not resumable,
        load_best_model_at_end=select_best and eval_frame is not None,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a non-finite loss is logged as such, and stops the training
        # every loss here is a mean over the batch: across processes the gradients are averaged,
        # not scaled by the process count (which suits losses summed over tokens)
        average_tokens_across_devices=False,
        # TensorBoard gets its own writer below (into the run folder); the others read their own set-up
        report_to=([r for r in tracking.report_to if r != "tensorboard"] or "none") if tracking else "none",
        run_name=tracking.name if tracking else None,
        disable_tqdm=not progress,
        use_cpu=dev.type == "cpu",
        bf16=settings.precision == "bf16",
        # one fused kernel for the AdamW update (it touches every parameter each step); CUDA and CPU have one
        optim="adamw_torch_fused" if dev.type in ("cuda", "cpu") else "adamw_torch",
        torch_compile=settings.compile,
        dataloader_num_workers=0,
    )
    # the main process tokenises (and caches) first, the others then read its cache
    with args.main_process_first(local=False, desc="tokenising"):
        train_ds = encode_cached(task_format, tokenizer, train, max_length=settings.max_length,
                                 cache_dir=cache_dir, within=within)
        eval_ds = (encode_cached(task_format, tokenizer, eval_frame, max_length=settings.max_length,
                                 cache_dir=cache_dir, within=within) if eval_frame is not None else None)
    # steps and evaluation intervals in optimizer steps over every process taking part
    plan = schedule(len(train_ds), settings, world_size=world_size(args))
    eval_every = plan.eval_every
    # a log line every few steps, on every evaluation; checkpoints fall on log lines, so that a
    # resumed run logs the same mean losses as an uninterrupted one
    args.logging_steps = max(d for d in range(1, 11) if eval_every % d == 0)
    every = settings.checkpoint_every
    save_every = eval_every
    if isinstance(every, int) and not select_best:
        save_every = math.ceil(every / args.logging_steps) * args.logging_steps
    args.eval_steps, args.save_steps = eval_every, save_every
    resume = last_checkpoint(out) if resumable else None
    if resume is not None:
        log.info("resuming from %s of an interrupted run (optimizer, scheduler, random state and batch order "
                 "restored)", resume.name)
    try:
        with quiet_transformers():
            trainer_class, extra = Trainer, {}
            if aligning:
                trainer_class = contrastive_trainer_class()
                extra = {"layer": contrastive[0], "temperature": contrastive[1]}
            trainer_class = resumable_trainer(trainer_class)
            trainer = trainer_class(
                model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                # tensor cores want lengths in multiples of 8; on a CPU padding only costs
                data_collator=_collator(task_format, tokenizer, pad_to_multiple_of=8 if cuda else None),
                compute_metrics=_accuracy if eval_ds is not None else None, **extra,
            )
            replace_progress(trainer, progress)
            trainer.add_callback(checkpoint_saved(fault_point, resumable=resumable))
            if on_progress is not None:
                trainer.add_callback(progress_callback(on_progress))
            if tracking and "tensorboard" in tracking.report_to and is_main_process():
                trainer.add_callback(tensorboard_callback(tracking.log_dir, fresh=resume is None))
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        history = pd.DataFrame(trainer.state.log_history)
        best_step = None
        if select_best and eval_ds is not None:
            if not trainer.state.best_model_checkpoint:
                raise StudyError(
                    f"model selection ended without a best checkpoint: {trainer.state.global_step} optimizer "
                    f"steps ran and evaluation comes every {eval_every}; raise epochs or evals_per_epoch, or "
                    f"lower batch_size x gradient_accumulation_steps (effective batch {plan.effective_batch})")
            best_step = int(Path(trainer.state.best_model_checkpoint).name.split("-")[-1])
        # drop the mixed-precision forward wrapper: the returned model is a plain fp32 model
        model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        return TrainResult(model=model.eval(), log=_tidy_log(history), best_step=best_step,
                           best_metric=trainer.state.best_metric if select_best else None)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Tracking:
    """Where a training reports its logs: ``report_to``, names of the Trainer's integrations
    (``tensorboard``, ``wandb``, ``mlflow``, ...); ``name``, the run name they show; ``log_dir``,
    the folder of TensorBoard's event files."""

    report_to: tuple[str, ...] = ()
    name: str | None = None
    log_dir: Path | None = None


def progress_callback(on_progress):
    """A Trainer callback that hands each optimizer step to ``on_progress``."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            on_progress(step=state.global_step, max_steps=state.max_steps, epoch=state.epoch or 0.0,
                        epochs=args.num_train_epochs)

    return Progress()


def tensorboard_callback(log_dir: Path, *, fresh: bool):
    """The Trainer's own TensorBoard integration, writing its event files into ``log_dir``. A
    ``fresh`` training (not resumed) first clears the folder, so that TensorBoard shows one run."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    if fresh:
        shutil.rmtree(log_dir, ignore_errors=True)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


#: written into a checkpoint folder once the Trainer has saved all of it
CHECKPOINT_SAVED = "saved-whole"


def last_checkpoint(folder: str | Path) -> Path | None:
    """The last checkpoint in ``folder`` that was saved whole; the main process deletes half-saved
    ones (a run killed while saving)."""
    whole = []
    for path in Path(folder).glob("checkpoint-*"):
        if (path / CHECKPOINT_SAVED).is_file():
            whole.append(path)
        elif is_main_process():
            shutil.rmtree(path, ignore_errors=True)
    return max(whole, key=lambda p: int(p.name.split("-")[-1]), default=None)


def checkpoint_saved(fault_point: str | None, *, resumable: bool = True):
    """A callback that stops a training whose loss is no longer finite, and marks each checkpoint
    saved whole (``resumable``: the model-only checkpoints of a model selection are never resumed
    from), then passes ``fault_point``."""
    from transformers import TrainerCallback

    class CheckpointSaved(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise FloatingPointError(
                    f"non-finite training loss ({loss}) at step {state.global_step}; lower the learning rate, "
                    "or train in fp32 (precision: fp32)")

        def on_save(self, args, state, control, **kwargs):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # every process has saved its part (its random state)
            if not state.is_world_process_zero:  # the main process saved the rest
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if resumable and folder.is_dir():
                (folder / CHECKPOINT_SAVED).write_text(str(state.global_step))
            if fault_point:
                faults.reached(fault_point)

    return CheckpointSaved()


def resumable_trainer(base):
    """``base`` (a ``Trainer`` class) whose length-grouped batches are drawn from the seed and the
    epoch alone. The ``Trainer``'s own length-grouped sampler draws from the global random state
    when an epoch starts, which a run resumed mid-epoch cannot restore: its batches would differ.
    Examples are grouped by the global batch (every process's batches of one optimizer step), so
    that N processes see, step by step, the examples one process sees with an N times larger batch
    (each process takes every N-th batch of the one order)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededSampler(LengthGroupedSampler):
        def __init__(self, batch_size: int, lengths: list[int], seed: int):
            super().__init__(batch_size, lengths=lengths)
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.seed * 1000 + int(self.epoch))
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    class ResumableTrainer(base):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if isinstance(sampler, LengthGroupedSampler):
                seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
                return EpochSeededSampler(sampler.batch_size * world_size(self.args), sampler.lengths, seed)
            return sampler

    return ResumableTrainer


def _tidy_log(log: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in ("step", "epoch", "loss", "eval_loss", "eval_accuracy", "learning_rate")
            if c in log.columns]
    out = log[keep].copy()
    return out.groupby("step", as_index=False).first() if "step" in out else out
