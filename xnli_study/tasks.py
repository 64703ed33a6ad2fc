"""The intermediate-task registry: what each task is, where its data lives, how to read it.

A params file names tasks by their registry name (``conditions: [none, sst2]``). Each task loads
from the hub, from local files in the task's own format, or, where the task has one, from the
synthetic sample (``xnli_study.sample``), into a tidy frame whose shape follows its format:

* ``single`` / ``pair`` (sentence and sentence-pair classification): ``text_a, text_b, label``
  (``text_b`` empty for single sentences; ``label`` an id into ``TaskSpec.label_names``);
* ``multiple_choice``: ``text_a`` (the context), ``text_b`` (the question or the start of the
  ending; may be empty), ``choices`` (a list of strings), ``label`` (the index of the right one);
* ``extractive_qa``: ``text_a`` (the question), ``text_b`` (the context), ``answer_text``,
  ``answer_start`` (a character offset into the context, -1 when unanswerable) and ``label``
  (1 answerable, 0 not);
* ``parallel`` and ``lexicon`` (the alignment tasks, trained by the contrastive objective of
  :mod:`xnli_study.contrastive`): ``text_a`` (English sentence or word), ``text_b`` (its
  translation), ``lang`` (the translation's language) and ``group`` (the English side: pairs of one
  group are never each other's negatives). They have no labels.

Each :class:`TaskSpec` names its two readers directly: ``read_hub(dataset, hub=, report=)`` for one
loaded hub split and ``read_local(path, report=, languages=)`` for the task's own files. Every
reader counts what it read and dropped in a :class:`~xnli_study.data.ReadReport`, and every hub
label goes through the same name check (:func:`~xnli_study.data.check_label_names`).

Script-based hub datasets (refused by ``datasets`` 4 and later) are read from the hub's parquet
export: their :class:`HubSource` records ``revision="refs/convert/parquet"``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from .data import (ReadReport, check_label_names, load_xnli, nli_as_pairs, nli_from_hub_dataset, read_nli_jsonl,
                   readable_text,
                   read_xnli_mt, sample_folder, subsample, text_lines, xnli_mt_rows)
from .errors import DataError
from .hub import require_hub
from .languages import NLI_LABELS
from .sample import lexicon_folder, parallel_folder, task_file

TaskFormat = Literal["single", "pair", "multiple_choice", "extractive_qa", "parallel", "lexicon"]
#: formats trained by the contrastive objective; only their encoder exists (no head, no labels)
ALIGNMENT_FORMATS = ("parallel", "lexicon")
PARQUET_EXPORT = "refs/convert/parquet"


@dataclass(frozen=True)
class HubSource:
    """One hub dataset (and its splits) that a task reads; ``{lang}`` in ``config`` stands for
    each non-English language of the study (translate-train data). ``label_names`` are the
    dataset's own ``ClassLabel`` names in id order, as documented on the hub: they are checked
    against the loaded dataset before any id is mapped, and id ``i`` means the task's label ``i``."""

    hub_id: str
    config: str | None = None
    splits: tuple[str, ...] = ("train",)
    columns: tuple[str, ...] = ("sentence",)
    label_column: str = "label"
    label_names: tuple[str, ...] = ()
    revision: str | None = None  # e.g. "refs/convert/parquet" for script-based hub datasets


#: ``read_local(path, *, report, languages)`` and ``read_hub(dataset, *, hub, report)``
LocalReader = Callable[..., pd.DataFrame]
HubReader = Callable[..., pd.DataFrame]
#: ``load_hub(spec, *, languages, report, max_rows)``: for tasks that pair several hub datasets
HubLoader = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class TaskSpec:
    """One intermediate task: its format, labels, and the functions that read it."""

    name: str
    format: TaskFormat
    description: str
    label_names: tuple[str, ...]
    hub: tuple[HubSource, ...]
    read_hub: HubReader | None
    read_local: LocalReader
    local_format: str  # what a local file looks like, for messages
    local_kind: Literal["file", "folder", "file or folder"] = "file"
    #: where the synthetic sample (``xnli_study.sample``) keeps this task's data, for tasks it has
    sample_path: Callable[[Path], Path] | None = None
    load_hub: HubLoader | None = None  # replaces read_hub for tasks that pair hub datasets
    unanswerable: bool = False  # extractive QA: questions without an answer are part of the task
    #: how XNLI transfer after this task is to be read: zero-shot (English data only) or
    #: translate-train (the task trains on machine-translated text of the evaluation languages)
    setting: Literal["zero-shot", "translate-train"] = "zero-shot"
    #: alignment tasks: the layer they align when ``tasks.<name>.layer`` is unset, from the
    #: encoder's depth and the study's headline layer: ``default_layer(depth, headline)``
    default_layer: Callable[[int, int], int] | None = None

    @property
    def reads_languages(self) -> bool:
        """Whether the task's data depends on the study's languages (translate-train text, parallel
        pairs, lexicons, hub configs per language)."""
        return (self.setting == "translate-train" or self.is_alignment
                or any(h.config and "{lang}" in h.config for h in self.hub))

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def has_sample(self) -> bool:
        return self.sample_path is not None

    @property
    def is_alignment(self) -> bool:
        return self.format in ALIGNMENT_FORMATS

    def layer(self, settings, depth: int, headline: int) -> int:
        """The layer an alignment task trains at: ``settings.layer``, else its default for ``depth``
        and the study's ``headline`` layer."""
        return settings.layer if settings.layer is not None else self.default_layer(depth, headline)

    @property
    def is_classification(self) -> bool:
        return self.format in ("single", "pair")

    @property
    def hub_ids(self) -> str:
        return ", ".join(dict.fromkeys(h.hub_id for h in self.hub))


# ---- sentence and sentence-pair classification ---------------------------------------------------
def _read_tsv(path: Path, *, header: bool) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                       header=0 if header else None)


def _int_labels(values: pd.Series, path: Path) -> pd.Series:
    try:
        return values.astype(int)
    except ValueError:
        bad = next(v for v in values if not str(v).lstrip("-").isdigit())
        raise DataError(f"{path}: label {bad!r} is not an integer class id") from None


def read_glue_single_tsv(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """GLUE single-sentence TSV with a header holding ``sentence`` and ``label``."""
    frame = _read_tsv(path, header=True)
    if "sentence" in frame.columns and "label" not in frame.columns:
        raise DataError(f"{path} has no label column (a GLUE test file carries none); train on train.tsv or dev.tsv")
    if not {"sentence", "label"} <= set(frame.columns):
        raise DataError(f"{path}: expected a header with 'sentence' and 'label', found {list(frame.columns)}")
    if report is not None:
        report.rows_read += len(frame)
    return pd.DataFrame({"text_a": frame["sentence"].str.strip(), "text_b": "",
                         "label": _int_labels(frame["label"], path)})


def read_pair_tsv(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """Paraphrase TSV: XTREME (no header) or PAWS-X's own (header ``id sentence1 sentence2 label``)."""
    frame = _read_tsv(path, header=False)
    if frame.shape[1] < 3:
        raise DataError(f"{path}: expected tab-separated sentence1, sentence2, label")
    if "sentence1" in set(frame.iloc[0]):
        frame.columns = list(frame.iloc[0])
        frame = frame.iloc[1:]
        a, b, y = frame["sentence1"], frame["sentence2"], frame["label"]
    else:
        a, b, y = frame[0], frame[1], frame[2]
    if report is not None:
        report.rows_read += len(frame)
    return pd.DataFrame({"text_a": a.values, "text_b": b.values, "label": _int_labels(y, path).values})


def read_glue_qqp(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """GLUE QQP TSV (header ``id qid1 qid2 question1 question2 is_duplicate``)."""
    frame = _read_tsv(path, header=True)
    if not {"question1", "question2", "is_duplicate"} <= set(frame.columns):
        raise DataError(f"{path}: expected GLUE QQP columns question1, question2, is_duplicate")
    if report is not None:
        report.rows_read += len(frame)
    return pd.DataFrame({"text_a": frame["question1"], "text_b": frame["question2"],
                         "label": _int_labels(frame["is_duplicate"], path)})


def read_nli_files(path: Path, *, report: ReadReport, languages=None) -> pd.DataFrame:
    """NLI JSONL ``{premise, hypothesis, label}``: one file, or every ``.jsonl`` file of a folder."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .jsonl files in this folder")
    return pd.concat([nli_as_pairs(read_nli_jsonl(f, report=report)) for f in files], ignore_index=True)


def read_xnli_mt_folder(path: Path, *, report: ReadReport, languages) -> pd.DataFrame:
    """The XNLI-1.0-MT folder: ``multinli.train.<lang>.tsv`` for each non-English language."""
    langs = [lang for lang in languages if lang != "en"]
    return pd.concat([nli_as_pairs(read_xnli_mt(path, lang=lang, report=report)) for lang in langs],
                     ignore_index=True)


def nli_from_hub(ds, *, hub: HubSource, report: ReadReport) -> pd.DataFrame:
    """A hub NLI split: label names checked, ids mapped, unlabelled (-1) rows dropped and counted."""
    return nli_as_pairs(nli_from_hub_dataset(ds, source=f"hub:{hub.hub_id}", report=report))


def classification_from_hub(ds, *, hub: HubSource, report: ReadReport) -> pd.DataFrame:
    """A hub classification split: the label names are checked against ``hub.label_names`` before
    ids are used; rows labelled -1 (unlabelled) are dropped and counted."""
    check_label_names(ds, hub.label_column, hub.label_names, source=f"hub:{hub.hub_id}")
    df = ds.to_pandas()
    cols = hub.columns
    frame = pd.DataFrame({"text_a": df[cols[0]], "text_b": df[cols[1]] if len(cols) > 1 else "",
                          "label": df[hub.label_column].astype(int)})
    report.rows_read += len(frame)
    unlabelled = frame["label"] < 0
    report.dropped_unusable += int(unlabelled.sum())
    return frame[~unlabelled].reset_index(drop=True)


# ---- multiple choice ---------------------------------------------------------------------------
# Each hub dataset and its local files share field names, so one mapper per task serves both.
def _as_list(value) -> list:
    """A list from a hub/pandas sequence cell (list, tuple, numpy array) or a JSON list."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    return list(value)


def _choice_frame(context, stem, choices, labels, *, source: str, n_choices: int,
                  report: ReadReport | None) -> pd.DataFrame:
    """Assemble a multiple-choice frame; rows without a gold answer (test splits) are dropped and
    counted, and a file with none at all is refused."""
    frame = pd.DataFrame({"text_a": [str(x).strip() for x in context],
                          "text_b": [str(x).strip() for x in stem],
                          "choices": [[str(c).strip() for c in _as_list(x)] for x in choices],
                          "label": labels})
    wrong = frame["choices"].map(len) != n_choices
    if wrong.any():
        raise DataError(f"{source}: {int(wrong.sum())} rows do not have {n_choices} answer choices "
                        f"(first at row {int(wrong.idxmax())})")
    usable = frame["label"].between(0, n_choices - 1)
    if report is not None:
        report.rows_read += len(frame)
        report.dropped_unusable += int((~usable).sum())
    if not usable.any():
        raise DataError(f"{source}: no row has a gold answer (is it a test split?); use the "
                        "training split")
    return frame[usable].reset_index(drop=True).astype({"label": int})


def _int_or_missing(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def hellaswag_frame(df: pd.DataFrame, *, source: str, report: ReadReport | None = None) -> pd.DataFrame:
    """HellaSwag rows (``ctx_a, ctx_b, endings, label``; hub or ``hellaswag_*.jsonl``).

    The choice is scored on ``ctx_a`` paired with ``ctx_b + ending``, as in the SWAG recipe; the
    hub's test split has an empty label and is dropped."""
    _require_columns(df, ("ctx_a", "ctx_b", "endings", "label"), source)
    return _choice_frame(df["ctx_a"], df["ctx_b"].fillna(""), df["endings"],
                         [_int_or_missing(x) for x in df["label"]], source=source, n_choices=4,
                         report=report)


def commonsenseqa_frame(df: pd.DataFrame, *, source: str, report: ReadReport | None = None) -> pd.DataFrame:
    """CommonsenseQA rows in the hub's fields (``question``, ``choices: {label, text}``,
    ``answerKey`` a letter); the answer letter is looked up in each row's own choice labels."""
    _require_columns(df, ("question", "choices", "answerKey"), source)
    letters = [[str(x) for x in _as_list(c["label"])] for c in df["choices"]]
    labels = [keys.index(key) if key in keys else -1 for keys, key in zip(letters, df["answerKey"].fillna(""))]
    return _choice_frame(df["question"], [""] * len(df), [c["text"] for c in df["choices"]], labels,
                         source=source, n_choices=5, report=report)


def cosmosqa_frame(df: pd.DataFrame, *, source: str, report: ReadReport | None = None) -> pd.DataFrame:
    """Cosmos QA rows (``context, question, answer0..answer3, label``; hub, CSV or JSONL)."""
    answers = [f"answer{i}" for i in range(4)]
    if "label" not in df.columns:  # the test split carries no answers
        df = df.assign(label=-1)
    _require_columns(df, ("context", "question", *answers, "label"), source)
    choices = df[answers].astype(str).values.tolist()
    return _choice_frame(df["context"], df["question"], choices,
                         [_int_or_missing(x) for x in df["label"]], source=source, n_choices=4,
                         report=report)


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing fields {missing}; found {list(df.columns)}")


def read_jsonl_records(path: Path) -> list[dict]:
    records = []
    for n, line in enumerate(text_lines(path), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {n}: not valid JSON ({err.msg})") from None
    if not records:
        raise DataError(f"{path}: no records")
    return records


def read_hellaswag_jsonl(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """HellaSwag's own ``hellaswag_{train,val}.jsonl``."""
    return hellaswag_frame(pd.DataFrame(read_jsonl_records(path)), source=str(path), report=report)


def read_commonsenseqa_jsonl(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """CommonsenseQA's own ``train_rand_split.jsonl`` (``question: {stem, choices: [{label, text}]}``)."""
    rows = []
    for r in read_jsonl_records(path):
        q = r.get("question")
        if not isinstance(q, dict) or "stem" not in q or "choices" not in q:
            raise DataError(f"{path}: expected question.stem and question.choices in every record")
        rows.append({"question": q["stem"], "answerKey": r.get("answerKey", ""),
                     "choices": {"label": [c["label"] for c in q["choices"]],
                                 "text": [c["text"] for c in q["choices"]]}})
    return commonsenseqa_frame(pd.DataFrame(rows), source=str(path), report=report)


def read_cosmosqa(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """Cosmos QA's own ``train.csv`` / ``valid.csv`` (quoted CSV with a header) or JSONL."""
    if path.suffix == ".jsonl":
        df = pd.DataFrame(read_jsonl_records(path))
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return cosmosqa_frame(df, source=str(path), report=report)


# ---- extractive QA --------------------------------------------------------------------------------
def squad_frame(df: pd.DataFrame, *, source: str, report: ReadReport | None = None) -> pd.DataFrame:
    """SQuAD rows in the hub's fields (``question, context, answers: {text, answer_start}``).

    The first gold answer is kept. No answer means unanswerable (SQuAD 2.0): ``answer_start`` -1,
    ``label`` 0. An answer whose text is not at its offset in the context is dropped and counted.
    """
    _require_columns(df, ("question", "context", "answers"), source)
    rows, misaligned = [], 0
    for question, context, answers in zip(df["question"], df["context"], df["answers"]):
        texts = _as_list(answers.get("text") if isinstance(answers, dict) else None)
        starts = _as_list(answers.get("answer_start") if isinstance(answers, dict) else None)
        if texts:
            text, start = str(texts[0]), int(starts[0])
            if context[start:start + len(text)] != text:
                misaligned += 1
                continue
        else:
            text, start = "", -1
        rows.append({"text_a": question.strip(), "text_b": context, "answer_text": text,
                     "answer_start": start, "label": int(start >= 0)})
    if report is not None:
        report.rows_read += len(df)
        report.dropped_unusable += misaligned
    if not rows:
        raise DataError(f"{source}: no usable questions")
    return pd.DataFrame(rows)


def read_squad_json(path: Path, *, report: ReadReport | None = None, languages=None) -> pd.DataFrame:
    """SQuAD's own JSON (v1.1 or v2.0: ``data -> paragraphs -> qas``; v2.0 marks
    ``is_impossible`` questions, whose answers list is empty)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: expected {_SQUAD_JSON}")
    rows = []
    for article in doc["data"]:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                rows.append({"question": qa["question"], "context": paragraph["context"],
                             "answers": {"text": [a["text"] for a in answers],
                                         "answer_start": [a["answer_start"] for a in answers]}})
    return squad_frame(pd.DataFrame(rows), source=str(path), report=report)


def _from_hub_rows(frame_of) -> HubReader:
    """A hub reader for tasks whose hub rows and local files share field names (one mapper)."""

    def read(ds, *, hub: HubSource, report: ReadReport) -> pd.DataFrame:
        return frame_of(ds.to_pandas(), source=f"hub:{hub.hub_id}", report=report)

    read.__name__ = read.__qualname__ = f"{frame_of.__name__}_from_hub"
    read.__doc__ = f"One hub split mapped by :func:`{frame_of.__name__}`."
    return read


# ---- alignment pairs ------------------------------------------------------------------------------
def aligned_pairs(english: list[str], other: list[str], lang: str) -> pd.DataFrame:
    """Pairs (English, translation) of one language; the English side is the pair's group."""
    return pd.DataFrame({"text_a": english, "text_b": other, "lang": lang, "group": english})


def _clean_pairs(frame: pd.DataFrame, report: ReadReport) -> pd.DataFrame:
    """Strip both sides and keep each pair once: the report counts every pair read, and drops
    pairs with an empty side or seen before (a premise repeats with each of its hypotheses)."""
    frame = frame.assign(text_a=frame["text_a"].str.strip(), text_b=frame["text_b"].str.strip(),
                         group=frame["group"].str.strip())
    report.rows_read += len(frame)
    keep = ((frame["text_a"] != "") & (frame["text_b"] != "")
            & ~frame.duplicated(["lang", "text_a", "text_b"]))
    report.dropped_unusable += int((~keep).sum())
    return frame[keep].reset_index(drop=True)


def read_parallel_folder(path: Path, *, report: ReadReport, languages) -> pd.DataFrame:
    """Parallel sentences from an XNLI-1.0-MT folder: ``multinli.train.en.tsv`` beside
    ``multinli.train.<lang>.tsv`` for each language, row ``i`` of each file the same item; every
    premise and hypothesis gives one pair (English, X); the report counts pairs."""
    _, english = xnli_mt_rows(path, lang="en")
    frames = []
    for lang in (x for x in languages if x != "en"):
        file, rows = xnli_mt_rows(path, lang=lang)
        if len(rows) != len(english):
            raise DataError(f"{file}: {len(rows)} rows, but multinli.train.en.tsv has {len(english)}; "
                            "the files of the folder must be parallel row by row")
        for field in ("premise", "hypo"):
            frames.append(aligned_pairs([r[field] or "" for r in english], [r[field] or "" for r in rows], lang))
    if not frames:
        raise DataError(f"{path}: the study has no language besides English to align")
    return _clean_pairs(pd.concat(frames, ignore_index=True), report)


def parallel_from_hub(spec: "TaskSpec", *, languages, report: ReadReport, max_rows: int | None,
                      seed: int = 0) -> pd.DataFrame:
    """Parallel sentences from the hub's XNLI translate-train data (``facebook/xnli``, split
    ``train``: the configs of the languages are parallel row by row). The same seeded rows are
    taken from English and each language (``max_rows`` of them, all when None). The report counts
    pairs (a row gives two: its premise and its hypothesis)."""
    import datasets
    import numpy as np

    source = spec.hub[0]
    english = datasets.load_dataset(source.hub_id, "en", split="train", revision=source.revision)
    n = len(english)
    rows = np.arange(n) if max_rows is None or max_rows >= n else np.sort(
        np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    english = english.select(rows)
    frames = []
    for lang in (x for x in languages if x != "en"):
        ds = datasets.load_dataset(source.hub_id, lang, split="train", revision=source.revision)
        if len(ds) != n:
            raise DataError(f"hub:{source.hub_id} {lang}: {len(ds)} train rows, English has {n}; not parallel")
        ds = ds.select(rows)
        for field in ("premise", "hypothesis"):
            frames.append(aligned_pairs(list(english[field]), list(ds[field]), lang))
    if not frames:
        raise DataError("the study has no language besides English to align")
    return _clean_pairs(pd.concat(frames, ignore_index=True), report)


def lexicon_path(folder: Path, lang: str) -> Path | None:
    """The MUSE dictionary English -> ``lang`` in ``folder``: ``en-<lang>.txt`` (the full one) or
    ``en-<lang>.0-5000.txt`` (MUSE's training split), whichever exists first."""
    for name in (f"en-{lang}.txt", f"en-{lang}.0-5000.txt"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_lexicon_folder(path: Path, *, report: ReadReport, languages) -> pd.DataFrame:
    """Word pairs from a folder of MUSE bilingual dictionaries (``en-<lang>.txt``: one
    ``english target`` pair per line, space- or tab-separated). A language without a dictionary is
    left out and named in the report's notes; lines that are not two words are dropped and counted."""
    frames, missing = [], []
    for lang in (x for x in languages if x != "en"):
        file = lexicon_path(path, lang)
        if file is None:
            missing.append(lang)
            continue
        english, other = [], []
        for line in text_lines(file):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                report.rows_read += 1
                report.dropped_unusable += 1
                continue
            english.append(parts[0])
            other.append(parts[1])
        frames.append(aligned_pairs(english, other, lang))
    if not frames:
        raise DataError(f"{path}: no bilingual lexicon for any language of the study; expected files "
                        f"named en-<lang>.txt (MUSE format), e.g. en-{next((x for x in languages if x != 'en'), 'fr')}.txt")
    if missing:
        report.notes.append(f"no lexicon for {', '.join(missing)}")
    return _clean_pairs(pd.concat(frames, ignore_index=True), report)


def drop_eval_overlap(frame: pd.DataFrame, config, *, run_dir, report: ReadReport) -> pd.DataFrame:
    """Drop (and count) parallel pairs that hold a sentence of XNLI dev or test: those are the
    evaluation and probe sets, which an alignment task must never train on."""
    held = set()
    whole = config.model_copy(update={"xnli": config.xnli.model_copy(update={"max_items": None})})
    for split in ("dev", "test"):  # every item, not only those xnli.max_items keeps
        xnli = load_xnli(whole, split=split, run_dir=run_dir)
        held |= set(xnli["premise"].str.strip()) | set(xnli["hypothesis"].str.strip())
    overlap = frame["text_a"].isin(held) | frame["text_b"].isin(held)
    report.dropped_eval_overlap += int(overlap.sum())
    return frame[~overlap].reset_index(drop=True)


# ---- the registry ---------------------------------------------------------------------------------
QA_LABELS = ("no_answer", "answer")
_SQUAD_JSON = "SQuAD JSON {version, data: [{title, paragraphs: [{context, qas}]}]}"
_NLI_JSONL = "JSONL {premise, hypothesis, label} with label words (a file, or a folder of .jsonl files)"
_MNLI_HUB = HubSource("nyu-mll/multi_nli", columns=("premise", "hypothesis"))
_ANLI_HUB = HubSource("facebook/anli", splits=("train_r1", "train_r2", "train_r3"), columns=("premise", "hypothesis"))

def _nli_task(name: str, description: str, *hub: HubSource) -> TaskSpec:
    """An English NLI task: 3 classes, hub splits and local NLI JSONL files read alike."""
    return TaskSpec(name=name, format="pair", description=description, label_names=NLI_LABELS, hub=hub,
                    read_hub=nli_from_hub, read_local=read_nli_files, local_format=_NLI_JSONL,
                    local_kind="file or folder")


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _nli_task("mnli", "MultiNLI (English NLI, 3 classes)", _MNLI_HUB),
        _nli_task("anli", "Adversarial NLI rounds 1-3 (3 classes)", _ANLI_HUB),
        _nli_task("anli_plus", "ANLI+ as in Phang et al. 2020: ANLI rounds 1-3 with MultiNLI and SNLI (3 classes)",
                  _ANLI_HUB, _MNLI_HUB, HubSource("stanfordnlp/snli", columns=("premise", "hypothesis"))),
        TaskSpec(
            name="xnli_mt", format="pair",
            description="translate-train MultiNLI (XNLI-MT) in the study's non-English languages",
            label_names=NLI_LABELS,
            hub=(HubSource("facebook/xnli", config="{lang}", columns=("premise", "hypothesis")),),
            read_hub=nli_from_hub, read_local=read_xnli_mt_folder,
            local_format="the XNLI-1.0-MT folder holding multinli.train.<lang>.tsv", local_kind="folder",
            setting="translate-train", sample_path=parallel_folder,
        ),
        TaskSpec(
            name="parallel_align", format="parallel",
            description="sentence-level contrastive alignment on parallel sentences (English, X): "
                        "symmetric InfoNCE on mean-pooled vectors at one layer",
            label_names=(),
            hub=(HubSource("facebook/xnli", config="{lang}", columns=("premise", "hypothesis")),),
            read_hub=None, load_hub=parallel_from_hub, read_local=read_parallel_folder,
            local_format="the XNLI-1.0-MT folder holding multinli.train.en.tsv and "
                         "multinli.train.<lang>.tsv, parallel row by row",
            local_kind="folder", sample_path=parallel_folder,
            default_layer=lambda depth, headline: headline,
        ),
        TaskSpec(
            name="lexical_align", format="lexicon",
            description="word-level contrastive alignment on bilingual lexicon pairs at an early layer",
            label_names=(), hub=(), read_hub=None, read_local=read_lexicon_folder,
            local_format="a folder of MUSE dictionaries en-<lang>.txt ('english target' per line)",
            local_kind="folder", sample_path=lexicon_folder,
            default_layer=lambda depth, headline: max(1, int(depth / 4 + 0.5)),
        ),
        TaskSpec(
            name="qqp", format="pair", description="Quora Question Pairs (GLUE, 2 classes)",
            label_names=("not_duplicate", "duplicate"),
            hub=(HubSource("nyu-mll/glue", config="qqp", columns=("question1", "question2"),
                           label_names=("not_duplicate", "duplicate")),),
            read_hub=classification_from_hub, read_local=read_glue_qqp,
            local_format="GLUE QQP TSV with header id qid1 qid2 question1 question2 is_duplicate",
        ),
        TaskSpec(
            name="squad", format="extractive_qa", description="SQuAD v1.1 (extractive QA)",
            label_names=QA_LABELS,
            hub=(HubSource("rajpurkar/squad", config="plain_text", columns=()),),
            read_hub=_from_hub_rows(squad_frame), read_local=read_squad_json,
            local_format=_SQUAD_JSON + " (train-v1.1.json)",
        ),
        TaskSpec(
            name="squad_v2", format="extractive_qa",
            description="SQuAD v2.0 (extractive QA with unanswerable questions)",
            label_names=QA_LABELS,
            hub=(HubSource("rajpurkar/squad_v2", config="squad_v2", columns=()),),
            read_hub=_from_hub_rows(squad_frame), read_local=read_squad_json,
            local_format=_SQUAD_JSON + " with is_impossible (train-v2.0.json)", unanswerable=True,
        ),
        TaskSpec(
            name="hellaswag", format="multiple_choice",
            description="HellaSwag (commonsense sentence completion, 4 endings)",
            label_names=("ending0", "ending1", "ending2", "ending3"),
            hub=(HubSource("Rowan/hellaswag", config="default", columns=(), revision=PARQUET_EXPORT),),
            read_hub=_from_hub_rows(hellaswag_frame), read_local=read_hellaswag_jsonl,
            local_format="HellaSwag JSONL (hellaswag_train.jsonl: ctx_a, ctx_b, endings, label)",
        ),
        TaskSpec(
            name="commonsenseqa", format="multiple_choice",
            description="CommonsenseQA (5-way multiple-choice questions)",
            label_names=("A", "B", "C", "D", "E"),
            hub=(HubSource("tau/commonsense_qa", columns=()),),
            read_hub=_from_hub_rows(commonsenseqa_frame), read_local=read_commonsenseqa_jsonl,
            local_format="CommonsenseQA JSONL (train_rand_split.jsonl: answerKey, question.stem, "
                         "question.choices)",
        ),
        TaskSpec(
            name="cosmosqa", format="multiple_choice",
            description="Cosmos QA (commonsense reading comprehension, 4 answers)",
            label_names=("answer0", "answer1", "answer2", "answer3"),
            hub=(HubSource("allenai/cosmos_qa", config="default", columns=(), revision=PARQUET_EXPORT),),
            read_hub=_from_hub_rows(cosmosqa_frame), read_local=read_cosmosqa,
            local_format="Cosmos QA train.csv (id, context, question, answer0..answer3, label) or the "
                         "same fields as JSONL",
        ),
        TaskSpec(
            name="sst2", format="single", description="SST-2 sentiment (single sentence, 2 classes)",
            label_names=("negative", "positive"),
            hub=(HubSource("stanfordnlp/sst2", label_names=("negative", "positive")),),
            read_hub=classification_from_hub, read_local=read_glue_single_tsv,
            local_format="GLUE TSV with header 'sentence<TAB>label' (0/1)",
            sample_path=lambda folder: task_file(folder, "sst2"),
        ),
        TaskSpec(
            name="pawsx", format="pair", description="PAWS-X English paraphrase (2 classes)",
            label_names=("not_paraphrase", "paraphrase"),
            hub=(HubSource("google-research-datasets/paws-x", config="en", columns=("sentence1", "sentence2"),
                           label_names=("0", "1")),),
            read_hub=classification_from_hub, read_local=read_pair_tsv,
            local_format="TSV 'sentence1<TAB>sentence2<TAB>label' (XTREME, no header) or with "
                         "header 'id sentence1 sentence2 label'",
        ),
    )
}


@dataclass(frozen=True)
class TaskSize:
    """How big a task's full training split is, for ``xnli-study plan``: examples, and tokens per
    example (XLM-R subwords with special tokens, every choice of a multiple-choice example,
    question and context of a QA example, both sides of an alignment pair), and where each
    figure comes from. Token counts are estimates: English words x 1.5, the ratio of MultiNLI's
    45 XLM-R tokens to its 29 words per pair (words counted on ../shared/data where it holds the
    task, else the dataset paper's average lengths)."""

    examples: int
    tokens: int  # per example, all choices together
    choices: int = 1  # sequences per example (multiple choice: one per choice)
    source: str = ""


_WORDS = "tokens = 1.5 x words"
TASK_SIZES: dict[str, TaskSize] = {
    "mnli": TaskSize(392_702, 45, source="MultiNLI paper, train; 45 tokens: STUDY.md section 9"),
    "anli": TaskSize(162_865, 97, source="ANLI paper, R1-R3 train 16,946 + 45,460 + 100,459; 64.6 words "
                                         f"per pair on shared/data anli/test.jsonl, {_WORDS}"),
    "anli_plus": TaskSize(1_105_719, 45, source="ANLI 162,865 + MultiNLI 392,702 + SNLI 550,152 train; "
                                                "tokens: the three weighted by size (97, 45, 25)"),
    "xnli_mt": TaskSize(392_702 * 14, 55, source="XNLI-MT: MultiNLI train translated into 14 languages; "
                                                 "55 tokens: XNLI's 27.5 English words per pair x 1.5, "
                                                 "x 1.3 for the other languages"),
    "parallel_align": TaskSize(392_702 * 2 * 14, 55, choices=2,
                               source="XNLI-MT: premises and hypotheses of MultiNLI train with their "
                                      "translations, both sides encoded (27.5 words per sentence pair)"),
    "lexical_align": TaskSize(5_000 * 14, 8, choices=2, source="MUSE: about 5,000 training pairs per language"),
    "qqp": TaskSize(363_846, 33, source="GLUE QQP train; 22 words per pair (GLUE paper), " + _WORDS),
    "squad": TaskSize(87_599, 190, source="SQuAD v1.1 train; 116-word contexts and 10-word questions "
                                          "(SQuAD paper), " + _WORDS),
    "squad_v2": TaskSize(130_319, 190, source="SQuAD v2.0 train; lengths as SQuAD v1.1"),
    "hellaswag": TaskSize(39_905, 4 * 90, choices=4, source="HellaSwag train; 40-word contexts and "
                                                            "20-word endings (HellaSwag paper), " + _WORDS),
    "commonsenseqa": TaskSize(9_741, 5 * 25, choices=5, source="CommonsenseQA train (random split); "
                                                               "13-word questions, 1.5-word answers"),
    "cosmosqa": TaskSize(25_262, 4 * 135, choices=4, source="Cosmos QA train; 70-word contexts, "
                                                            "10-word questions and answers"),
    "sst2": TaskSize(67_349, 30, source="GLUE SST-2 train; 19.5 words per sentence on shared/data "
                                        "sst2/dev.tsv, " + _WORDS),
    "pawsx": TaskSize(49_401, 65, source="PAWS-X English train; 42.6 words per pair on shared/data "
                                         "pawsx/dev-en.tsv, " + _WORDS),
}
#: XNLI per language: dev 2,490 and test 5,010 items (XNLI paper); 42 tokens per English pair
XNLI_ITEMS = {"dev": 2_490, "test": 5_010}
XNLI_TOKENS = 55  # per pair, over the 15 languages (English 42)


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def hub_fix(spec: TaskSpec) -> str:
    """How to run task ``spec`` without the hub: the params to set and the file they name."""
    return f"Set tasks.{spec.name}.source: local and tasks.{spec.name}.path: <{spec.local_format}>."


def _local(spec: TaskSpec, path: Path, *, languages: list[str], report: ReadReport) -> pd.DataFrame:
    found = {"file": path.is_file(), "folder": path.is_dir(), "file or folder": path.exists()}[spec.local_kind]
    if not found:
        raise DataError(f"task {spec.name!r}: local {spec.local_kind} {path} not found; expected "
                        f"{spec.local_format}")
    return spec.read_local(path, report=report, languages=languages)


def _hub(spec: TaskSpec, *, languages: list[str], report: ReadReport, max_rows: int | None) -> pd.DataFrame:
    if not spec.hub:
        raise DataError(f"task {spec.name!r} has no hub source; {hub_fix(spec)}")
    require_hub(f"task {spec.name!r} ({spec.hub_ids})", fix=hub_fix(spec),
                datasets=[(source.hub_id, source.revision) for source in spec.hub])
    if spec.load_hub is not None:
        return spec.load_hub(spec, languages=languages, report=report, max_rows=max_rows)
    import datasets

    frames = []
    for source in spec.hub:
        configs = ([source.config.format(lang=lang) for lang in languages if lang != "en"]
                   if source.config and "{lang}" in source.config else [source.config])
        for config_name in configs:
            for split in source.splits:
                ds = datasets.load_dataset(source.hub_id, config_name, split=split, revision=source.revision)
                frames.append(spec.read_hub(ds, hub=source, report=report))
    return pd.concat(frames, ignore_index=True)


def load_task(name: str, config, *, run_dir: str | Path, report: ReadReport | None = None) -> pd.DataFrame:
    """Training data of task ``name`` as the params say, in its format's frame (module docstring),
    capped at ``tasks.<name>.max_examples``. ``report`` counts the rows read and dropped."""
    spec = get_task(name)
    report = report if report is not None else ReadReport(f"task:{name}")
    settings = config.task_data(name)
    if settings.source == "sample":
        frame = spec.read_local(spec.sample_path(sample_folder(config, run_dir)), report=report,
                                languages=config.languages)
    elif settings.source == "local":
        with readable_text(f"tasks.{name}.path", config.data_path(settings.path)):
            frame = _local(spec, config.data_path(settings.path), languages=config.languages, report=report)
    else:
        frame = _hub(spec, languages=config.languages, report=report, max_rows=settings.max_examples)
    if spec.is_alignment:
        if spec.format == "parallel":
            frame = drop_eval_overlap(frame, config, run_dir=run_dir, report=report)
        return subsample(frame, settings.max_examples)
    if spec.format == "extractive_qa" and not spec.unanswerable:  # e.g. SQuAD 1.1: every question has an answer
        unanswered = frame["answer_start"] < 0
        report.dropped_unusable += int(unanswered.sum())
        frame = frame[~unanswered].reset_index(drop=True)
    bad = set(frame["label"].unique()) - set(range(spec.num_labels))
    if bad:
        raise DataError(f"task {name!r}: labels {sorted(bad)} outside 0..{spec.num_labels - 1}")
    return subsample(frame, settings.max_examples)
