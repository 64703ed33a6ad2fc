"""The intermediate-task registry: what each task is, where its data lives, how to read it.

A params file names tasks by their registry name (``conditions: [none, sst2]``). Each task loads
into a tidy frame ``text_a, text_b, label`` (``text_b`` empty for single-sentence tasks; ``label``
an id into ``TaskSpec.label_names``) from the hub, from local files in the task's own format, or,
where the task has one, from the synthetic sample (``xnli_study.sample``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from .data import ReadReport, canonical_label, read_nli_jsonl, sample_folder, subsample
from .errors import DataError
from .hub import require_hub

TaskFormat = Literal["single", "pair"]


@dataclass(frozen=True)
class TaskSpec:
    """One intermediate task."""

    name: str
    format: TaskFormat
    description: str
    label_names: tuple[str, ...]
    hub_id: str
    hub_config: str | None = None
    hub_splits: tuple[str, ...] = ("train",)
    revision: str | None = None  # e.g. "refs/convert/parquet" for script-based hub datasets
    hub_columns: tuple[str, ...] = ("sentence",)
    local_format: str = ""  # what a local file looks like, for messages and the reader
    has_sample: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="mnli", format="pair", description="MultiNLI (English NLI, 3 classes)",
            label_names=("entailment", "neutral", "contradiction"), hub_id="nyu-mll/multi_nli",
            hub_columns=("premise", "hypothesis"),
            local_format="JSONL {premise, hypothesis, label} with label words",
        ),
        TaskSpec(
            name="anli", format="pair", description="Adversarial NLI rounds 1-3 (3 classes)",
            label_names=("entailment", "neutral", "contradiction"), hub_id="facebook/anli",
            hub_splits=("train_r1", "train_r2", "train_r3"), hub_columns=("premise", "hypothesis"),
            local_format="JSONL {premise, hypothesis, label} with label words",
        ),
        TaskSpec(
            name="sst2", format="single", description="SST-2 sentiment (single sentence, 2 classes)",
            label_names=("negative", "positive"), hub_id="stanfordnlp/sst2",
            hub_columns=("sentence",), local_format="GLUE TSV with header 'sentence<TAB>label' (0/1)",
            has_sample=True,
        ),
        TaskSpec(
            name="pawsx", format="pair", description="PAWS-X English paraphrase (2 classes)",
            label_names=("not_paraphrase", "paraphrase"), hub_id="google-research-datasets/paws-x",
            hub_config="en", hub_columns=("sentence1", "sentence2"),
            local_format="TSV 'sentence1<TAB>sentence2<TAB>label' (XTREME, no header) or with "
                         "header 'id sentence1 sentence2 label'",
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def read_glue_single_tsv(path: Path) -> pd.DataFrame:
    """GLUE single-sentence TSV with a header holding ``sentence`` and ``label``."""
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    if not {"sentence", "label"} <= set(frame.columns):
        raise DataError(f"{path}: expected a header with 'sentence' and 'label', found {list(frame.columns)}")
    return pd.DataFrame({"text_a": frame["sentence"].str.strip(), "text_b": "",
                         "label": frame["label"].astype(int)})


def read_pair_tsv(path: Path) -> pd.DataFrame:
    """Paraphrase TSV: XTREME (no header) or PAWS-X's own (header ``id sentence1 sentence2 label``)."""
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                        header=None)
    if frame.shape[1] < 3:
        raise DataError(f"{path}: expected tab-separated sentence1, sentence2, label")
    if "sentence1" in set(frame.iloc[0]):
        frame.columns = list(frame.iloc[0])
        frame = frame.iloc[1:]
        a, b, y = frame["sentence1"], frame["sentence2"], frame["label"]
    else:
        a, b, y = frame[0], frame[1], frame[2]
    return pd.DataFrame({"text_a": a.values, "text_b": b.values, "label": y.astype(int).values})


def _local(spec: TaskSpec, path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(
            f"task {spec.name!r}: local file {path} not found; expected {spec.local_format}"
        )
    if spec.name in ("mnli", "anli"):
        nli = read_nli_jsonl(path, report=ReadReport(str(path)))
        return pd.DataFrame({"text_a": nli["premise"], "text_b": nli["hypothesis"], "label": nli["label"]})
    if spec.name == "sst2":
        return read_glue_single_tsv(path)
    return read_pair_tsv(path)


def _hub(spec: TaskSpec) -> pd.DataFrame:
    require_hub(
        f"task {spec.name!r} ({spec.hub_id})",
        fix=f"Set tasks.{spec.name}.source: local and tasks.{spec.name}.path: <a file in the "
            f"task's format: {spec.local_format}>.",
    )
    import datasets

    frames = []
    for split in spec.hub_splits:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=split, revision=spec.revision)
        df = ds.to_pandas()
        cols = spec.hub_columns
        labels = df["label"]
        if spec.label_names == ("entailment", "neutral", "contradiction"):
            labels = [canonical_label(int(x), source=f"hub:{spec.hub_id}") for x in labels]
        frames.append(pd.DataFrame({
            "text_a": df[cols[0]], "text_b": df[cols[1]] if len(cols) > 1 else "", "label": labels,
        }))
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["label"] >= 0].reset_index(drop=True)


def load_task(name: str, config, *, run_dir: str | Path) -> pd.DataFrame:
    """Training data of task ``name`` as the params say: ``text_a, text_b, label``, capped."""
    spec = get_task(name)
    settings = config.task_data(name)
    if settings.source == "sample":
        if not spec.has_sample:
            raise DataError(
                f"task {name!r} has no synthetic sample; set tasks.{name}.source to hub or local"
            )
        frame = read_glue_single_tsv(sample_folder(config, run_dir) / name / "train.tsv")
    elif settings.source == "local":
        if not settings.path:
            raise DataError(f"tasks.{name}.source is 'local' but tasks.{name}.path is not set")
        frame = _local(spec, config.path(settings.path))
    else:
        frame = _hub(spec)
    bad = set(frame["label"].unique()) - set(range(spec.num_labels))
    if bad:
        raise DataError(f"task {name!r}: labels {sorted(bad)} outside 0..{spec.num_labels - 1}")
    return subsample(frame, settings.max_examples)
