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

from .data import ReadReport, nli_from_hub_dataset, read_nli_jsonl, read_xnli_mt, sample_folder, subsample
from .errors import DataError
from .hub import require_hub

TaskFormat = Literal["single", "pair"]
NLI3 = ("entailment", "neutral", "contradiction")


@dataclass(frozen=True)
class HubSource:
    """One hub dataset (and its splits) that a task reads; ``{lang}`` in ``config`` stands for
    each non-English language of the study (translate-train data)."""

    hub_id: str
    config: str | None = None
    splits: tuple[str, ...] = ("train",)
    columns: tuple[str, ...] = ("sentence",)
    label_column: str = "label"
    revision: str | None = None  # e.g. "refs/convert/parquet" for script-based hub datasets


@dataclass(frozen=True)
class TaskSpec:
    """One intermediate task."""

    name: str
    format: TaskFormat
    description: str
    label_names: tuple[str, ...]
    hub: tuple[HubSource, ...]
    local_reader: str  # "nli_jsonl", "glue_single", "pair_tsv", "glue_qqp" or "xnli_mt"
    local_format: str  # what a local file looks like, for messages
    has_sample: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def hub_ids(self) -> str:
        return ", ".join(dict.fromkeys(h.hub_id for h in self.hub))


_NLI_JSONL = "JSONL {premise, hypothesis, label} with label words (a file, or a folder of .jsonl files)"
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="mnli", format="pair", description="MultiNLI (English NLI, 3 classes)",
            label_names=NLI3, hub=(HubSource("nyu-mll/multi_nli", columns=("premise", "hypothesis")),),
            local_reader="nli_jsonl", local_format=_NLI_JSONL,
        ),
        TaskSpec(
            name="anli", format="pair", description="Adversarial NLI rounds 1-3 (3 classes)",
            label_names=NLI3,
            hub=(HubSource("facebook/anli", splits=("train_r1", "train_r2", "train_r3"),
                           columns=("premise", "hypothesis")),),
            local_reader="nli_jsonl", local_format=_NLI_JSONL,
        ),
        TaskSpec(
            name="anli_plus", format="pair",
            description="ANLI+ as in Phang et al. 2020: ANLI rounds 1-3 with MultiNLI and SNLI (3 classes)",
            label_names=NLI3,
            hub=(HubSource("facebook/anli", splits=("train_r1", "train_r2", "train_r3"),
                           columns=("premise", "hypothesis")),
                 HubSource("nyu-mll/multi_nli", columns=("premise", "hypothesis")),
                 HubSource("stanfordnlp/snli", columns=("premise", "hypothesis"))),
            local_reader="nli_jsonl", local_format=_NLI_JSONL,
        ),
        TaskSpec(
            name="xnli_mt", format="pair",
            description="translate-train MultiNLI (XNLI-MT) in the study's non-English languages",
            label_names=NLI3,
            hub=(HubSource("facebook/xnli", config="{lang}", columns=("premise", "hypothesis")),),
            local_reader="xnli_mt",
            local_format="the XNLI-1.0-MT folder holding multinli.train.<lang>.tsv",
        ),
        TaskSpec(
            name="qqp", format="pair", description="Quora Question Pairs (GLUE, 2 classes)",
            label_names=("not_duplicate", "duplicate"),
            hub=(HubSource("nyu-mll/glue", config="qqp", columns=("question1", "question2")),),
            local_reader="glue_qqp",
            local_format="GLUE QQP TSV with header id qid1 qid2 question1 question2 is_duplicate",
        ),
        TaskSpec(
            name="sst2", format="single", description="SST-2 sentiment (single sentence, 2 classes)",
            label_names=("negative", "positive"), hub=(HubSource("stanfordnlp/sst2"),),
            local_reader="glue_single", local_format="GLUE TSV with header 'sentence<TAB>label' (0/1)",
            has_sample=True,
        ),
        TaskSpec(
            name="pawsx", format="pair", description="PAWS-X English paraphrase (2 classes)",
            label_names=("not_paraphrase", "paraphrase"),
            hub=(HubSource("google-research-datasets/paws-x", config="en", columns=("sentence1", "sentence2")),),
            local_reader="pair_tsv",
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


def read_glue_qqp(path: Path) -> pd.DataFrame:
    """GLUE QQP TSV (header ``id qid1 qid2 question1 question2 is_duplicate``)."""
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    if not {"question1", "question2", "is_duplicate"} <= set(frame.columns):
        raise DataError(f"{path}: expected GLUE QQP columns question1, question2, is_duplicate")
    return pd.DataFrame({"text_a": frame["question1"], "text_b": frame["question2"],
                         "label": frame["is_duplicate"].astype(int)})


def _nli_pairs(nli: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"text_a": nli["premise"].values, "text_b": nli["hypothesis"].values,
                         "label": nli["label"].values})


def _local(spec: TaskSpec, path: Path, *, languages: list[str]) -> pd.DataFrame:
    expect_dir = spec.local_reader == "xnli_mt" or (spec.local_reader == "nli_jsonl" and path.is_dir())
    if not (path.is_dir() if expect_dir else path.is_file()):
        raise DataError(f"task {spec.name!r}: local {'folder' if expect_dir else 'file'} {path} not "
                        f"found; expected {spec.local_format}")
    if spec.local_reader == "nli_jsonl":
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"task {spec.name!r}: no .jsonl files in {path}")
        return pd.concat([_nli_pairs(read_nli_jsonl(f, report=ReadReport(str(f)))) for f in files],
                         ignore_index=True)
    if spec.local_reader == "xnli_mt":
        langs = [lang for lang in languages if lang != "en"]
        return pd.concat([_nli_pairs(read_xnli_mt(path, lang=lang)) for lang in langs], ignore_index=True)
    if spec.local_reader == "glue_single":
        return read_glue_single_tsv(path)
    if spec.local_reader == "glue_qqp":
        return read_glue_qqp(path)
    return read_pair_tsv(path)


def _hub(spec: TaskSpec, *, languages: list[str]) -> pd.DataFrame:
    require_hub(
        f"task {spec.name!r} ({spec.hub_ids})",
        fix=f"Set tasks.{spec.name}.source: local and tasks.{spec.name}.path: <{spec.local_format}>.",
    )
    import datasets

    frames = []
    for source in spec.hub:
        configs = ([source.config.format(lang=lang) for lang in languages if lang != "en"]
                   if source.config and "{lang}" in source.config else [source.config])
        for config_name in configs:
            for split in source.splits:
                ds = datasets.load_dataset(source.hub_id, config_name, split=split, revision=source.revision)
                if spec.label_names == NLI3:  # label names checked, ids mapped, -1 rows dropped
                    frames.append(_nli_pairs(nli_from_hub_dataset(ds, source=f"hub:{source.hub_id}")))
                    continue
                df = ds.to_pandas()
                cols = source.columns
                frames.append(pd.DataFrame({
                    "text_a": df[cols[0]], "text_b": df[cols[1]] if len(cols) > 1 else "",
                    "label": df[source.label_column],
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
        frame = _local(spec, config.path(settings.path), languages=config.languages)
    else:
        frame = _hub(spec, languages=config.languages)
    bad = set(frame["label"].unique()) - set(range(spec.num_labels))
    if bad:
        raise DataError(f"task {name!r}: labels {sorted(bad)} outside 0..{spec.num_labels - 1}")
    return subsample(frame, settings.max_examples)
