"""Readers for XNLI and MultiNLI, and the one label space every source is mapped into.

Every reader returns a tidy ``pandas.DataFrame``. XNLI frames have one row per (language, item):
``lang, id, premise_id, premise, hypothesis, label`` where ``id`` is shared by the translations of
an item and ``label`` is the canonical id (entailment 0, neutral 1, contradiction 2) or -1 when the
source has no label. NLI training frames have ``premise, hypothesis, label``.

Label ids differ between sources, so labels are read as words wherever the source has words and
mapped through an explicit table otherwise (``INT_LABELS``); nothing trusts integer ids blindly.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import pandas as pd

from .errors import DataError
from .hub import require_hub
from .languages import LABEL_TO_ID, NLI_LABELS
from .runfolder import RunFolder
from .sample import is_written, mnli_file, write_sample, xnli_folder

#: integer label ids of each source, as documented by the source
INT_LABELS: dict[str, tuple[str, ...]] = {
    "hub:facebook/xnli": ("entailment", "neutral", "contradiction"),
    "hub:nyu-mll/multi_nli": ("entailment", "neutral", "contradiction"),
    "hub:nyu-mll/glue/mnli": ("entailment", "neutral", "contradiction"),
    "hub:facebook/anli": ("entailment", "neutral", "contradiction"),
    "hub:stanfordnlp/snli": ("entailment", "neutral", "contradiction"),
    "xlm": ("contradiction", "neutral", "entailment"),
}
_WORD_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction",
                 "contradictory": "contradiction"}
#: gold label of MultiNLI / XNLI pairs whose annotators reached no consensus
NO_CONSENSUS = "-"


def text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, split on ``\n`` only (a trailing ``\r`` removed).

    ``str.splitlines`` also breaks on the control characters (``\x1c``, ``\x85``, ``\u2028``...)
    that XNLI and MultiNLI sentences contain, which would cut a row in two.
    """
    return [line.removesuffix("\r") for line in Path(path).read_text(encoding="utf-8").split("\n")]


def check_label_names(ds, column: str, expected, *, source: str) -> None:
    """Refuse a hub dataset whose ``ClassLabel`` names in ``column`` differ from ``expected`` (the
    documented order): integer ids are mapped only where their meaning is known."""
    names = list(getattr(ds.features[column], "names", []))
    if names != list(expected):
        raise DataError(f"{source}: label names {names} differ from the documented "
                        f"{list(expected)}; refusing to map ids blindly")


def canonical_label(raw: object, *, source: str) -> int:
    """Map a source's label (word or integer id) to the canonical id; raise ``DataError`` if unknown."""
    if isinstance(raw, str):
        word = raw.strip().lower()
        word = _WORD_ALIASES.get(word, word)
        if word in LABEL_TO_ID:
            return LABEL_TO_ID[word]
        if word.lstrip("-").isdigit():
            raw = int(word)
        else:
            raise DataError(f"{source}: unknown label {raw!r}; expected one of {', '.join(NLI_LABELS)}")
    if isinstance(raw, (int,)) or hasattr(raw, "__index__"):
        names = INT_LABELS.get(source)
        if names is None:
            raise DataError(f"{source}: integer label {raw!r} but no mapping is known for this source")
        if int(raw) < 0:
            return -1  # the hub marks unlabelled rows with -1
        return LABEL_TO_ID[names[int(raw)]]
    raise DataError(f"{source}: unreadable label {raw!r}")


@dataclass
class ReadReport:
    """What a reader dropped, for the data-inspection stage."""

    source: str
    rows_read: int = 0
    dropped_no_consensus: int = 0
    dropped_unusable: int = 0  # no gold answer (a test split) or an answer not found in its context
    dropped_eval_overlap: int = 0  # alignment pairs holding an XNLI dev or test sentence
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "rows_read": self.rows_read,
                "dropped_no_consensus": self.dropped_no_consensus,
                "dropped_unusable": self.dropped_unusable,
                "dropped_eval_overlap": self.dropped_eval_overlap, "notes": "; ".join(self.notes)}


# ---- XNLI ------------------------------------------------------------------------------------
OFFICIAL_REQUIRED = ("language", "gold_label", "sentence1", "sentence2", "promptID", "pairID")


def read_xnli_official(folder: str | Path, *, split: str, languages: Iterable[str]) -> pd.DataFrame:
    """Read the official XNLI-1.0 ``xnli.{split}.tsv`` (or ``.jsonl``) from ``folder``."""
    folder = Path(folder)
    tsv, jsonl = folder / f"xnli.{split}.tsv", folder / f"xnli.{split}.jsonl"
    if tsv.is_file():
        with tsv.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        path = tsv
    elif jsonl.is_file():
        rows = [json.loads(line) for line in text_lines(jsonl) if line.strip()]
        path = jsonl
    else:
        raise DataError(
            f"XNLI {split} not found: neither {tsv} nor {jsonl} exists; point xnli.path at the "
            "unpacked XNLI-1.0 folder (it holds xnli.dev.tsv and xnli.test.tsv)"
        )
    if not rows:
        raise DataError(f"{path} holds no rows")
    missing = [c for c in OFFICIAL_REQUIRED if c not in rows[0]]
    if missing:
        raise DataError(f"{path}: not the official XNLI-1.0 layout, missing column(s) {', '.join(missing)}")
    wanted = list(languages)
    frame = pd.DataFrame({
        "lang": [r["language"] for r in rows],
        "id": [str(r["pairID"]) for r in rows],
        "premise_id": [str(r["promptID"]) for r in rows],
        "premise": [r["sentence1"] for r in rows],
        "hypothesis": [r["sentence2"] for r in rows],
        "label": [canonical_label(r["gold_label"], source=str(path)) for r in rows],
    })
    found = set(frame["lang"])
    absent = [lang for lang in wanted if lang not in found]
    if absent:
        raise DataError(f"{path}: no rows for language(s) {', '.join(absent)}")
    return frame[frame["lang"].isin(wanted)].reset_index(drop=True)


def read_xnli_xtreme(folder: str | Path, *, split: str, languages: Iterable[str]) -> pd.DataFrame:
    """Read XTREME's per-language XNLI files ``{split}-{lang}.tsv`` (no header).

    Dev rows are ``premise, hypothesis, label-word``; XTREME's test files carry **no label**, so
    their rows get label -1 (evaluation refuses them). Item ids are ``<split>-<row>``, the same in
    every language (the files are row-parallel); premise ids change where the premise changes.
    """
    folder = Path(folder)
    frames = []
    for lang in languages:
        path = folder / f"{split}-{lang}.tsv"
        if not path.is_file():
            raise DataError(f"XTREME XNLI file {path} not found; expected {split}-<lang>.tsv per language")
        rows = [line.split("\t") for line in text_lines(path) if line.strip()]
        widths = {len(r) for r in rows}
        if not widths <= {2, 3}:
            raise DataError(f"{path}: expected 2 or 3 tab-separated columns, found {sorted(widths)}")
        labels = [canonical_label(r[2], source=str(path)) if len(r) == 3 else -1 for r in rows]
        premises = [r[0] for r in rows]
        frames.append(pd.DataFrame({
            "lang": lang, "id": [f"{split}-{i}" for i in range(len(rows))],
            "premise_id": _premise_ids(premises, split), "premise": premises,
            "hypothesis": [r[1] for r in rows], "label": labels,
        }))
    return pd.concat(frames, ignore_index=True)


def load_xnli_hub(hub_id: str, *, split: str, languages: Iterable[str],
                  revision: str | None = None) -> pd.DataFrame:
    """Load XNLI from the hub, one config per language (``facebook/xnli``, split dev -> validation)."""
    require_hub(
        f"XNLI ({hub_id})",
        fix="Download XNLI-1.0 once and set xnli.source: official with xnli.path: <its folder>, "
            "or use xnli.source: sample; or fetch it where the hub can be reached: xnli-study prefetch.",
        datasets=[(hub_id, revision)],
    )
    import datasets

    hub_split = {"dev": "validation"}.get(split, split)
    frames = []
    for lang in languages:
        ds = datasets.load_dataset(hub_id, lang, split=hub_split, revision=revision)
        nli = nli_from_hub_dataset(ds, source=f"hub:{hub_id}")
        frames.append(nli.assign(
            lang=lang, id=[f"{split}-{i}" for i in range(len(nli))],
            premise_id=_premise_ids(nli["premise"].tolist(), split),
        )[["lang", "id", "premise_id", "premise", "hypothesis", "label"]])
    return pd.concat(frames, ignore_index=True)


def _premise_ids(premises: list[str], prefix: str) -> list[str]:
    """Ids that change where the premise changes (XNLI rows come in runs of one premise)."""
    ids, current, last = [], -1, None
    for text in premises:
        if text.strip() != last:
            current += 1
            last = text.strip()
        ids.append(f"{prefix}-p{current}")
    return ids


def check_parallel(frame: pd.DataFrame) -> None:
    """Raise ``DataError`` unless every language has the same item ids, premise ids and labels."""
    langs = sorted(frame["lang"].unique())
    if len(langs) < 2:
        return
    ref = frame[frame["lang"] == langs[0]].set_index("id")
    for lang in langs[1:]:
        other = frame[frame["lang"] == lang].set_index("id")
        if list(other.index) != list(ref.index):
            raise DataError(f"XNLI languages are not parallel: item ids of {lang!r} differ from {langs[0]!r}")
        if (other["premise_id"] != ref["premise_id"]).any():
            raise DataError(f"XNLI languages are not parallel: premise ids of {lang!r} differ")
        if (other["label"] != ref["label"]).any():
            raise DataError(f"XNLI languages are not parallel: labels of {lang!r} differ")


def cap_items(frame: pd.DataFrame, max_items: int | None, *, seed: int = 0) -> pd.DataFrame:
    """Keep a seeded random sample of ``max_items`` item ids, the same ids in every language, in
    their original order. Not the first items: XNLI files run genre by genre, so the first N
    would skew the genres."""
    if max_items is None:
        return frame
    first_lang = frame["lang"].iloc[0]
    ids = frame.loc[frame["lang"] == first_lang, "id"]
    if max_items >= len(ids):
        return frame.reset_index(drop=True)
    keep = ids.sample(n=max_items, random_state=seed)
    return frame[frame["id"].isin(set(keep))].reset_index(drop=True)


# ---- MultiNLI / NLI training data --------------------------------------------------------------
def read_nli_jsonl(path: str | Path, *, report: ReadReport | None = None) -> pd.DataFrame:
    """Read JSONL ``{premise, hypothesis, label}`` (label words); drop and count ``-`` labels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NLI file {path} not found")
    parsed = []
    for n, line in enumerate(text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            parsed.append((row["premise"], row["hypothesis"], row["label"]))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}, line {n}: expected a JSON object with premise, hypothesis, label ({err})"
            ) from None
    return _nli_rows(parsed, path, report or ReadReport(str(path)))


def read_mnli_file(path: str | Path, *, report: ReadReport | None = None) -> pd.DataFrame:
    """Read MultiNLI from a local file in any of its layouts, detected from the file itself:

    * plain JSONL ``{premise, hypothesis, label}`` (label words);
    * the official ``multinli_1.0_*.jsonl`` (``sentence1``, ``sentence2``, ``gold_label``);
    * the official ``multinli_1.0_*.txt`` and GLUE's ``MNLI/*.tsv`` (tab-separated with a header
      naming ``sentence1``, ``sentence2`` and ``gold_label``).

    Rows whose gold label is ``-`` (no annotator consensus) are dropped and counted in ``report``.
    A file without labels (GLUE's test files) is refused: it cannot train or select a model.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MultiNLI file {path} not found")
    report = report or ReadReport(str(path))
    if path.suffix == ".jsonl":
        first = next((line for line in text_lines(path) if line.strip()), "")
        try:
            keys = set(json.loads(first))
        except json.JSONDecodeError:
            raise DataError(f"{path}: the first line is not a JSON object") from None
        if {"premise", "hypothesis", "label"} <= keys:
            return read_nli_jsonl(path, report=report)
        if {"sentence1", "sentence2", "gold_label"} <= keys:
            rows = [json.loads(line) for line in text_lines(path) if line.strip()]
            return _nli_rows(((r["sentence1"], r["sentence2"], r["gold_label"]) for r in rows), path, report)
        raise DataError(f"{path}: JSON lines need premise/hypothesis/label or sentence1/sentence2/gold_label")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    columns = set(rows[0]) if rows else set()
    if not {"sentence1", "sentence2"} <= columns:
        raise DataError(f"{path}: expected a tab-separated header with sentence1 and sentence2 "
                        "(GLUE MNLI or multinli_1.0 .txt)")
    if "gold_label" not in columns:
        raise DataError(f"{path} has no gold_label column (a test file without labels); it cannot "
                        "train or select a model")
    return _nli_rows(((r["sentence1"], r["sentence2"], r["gold_label"]) for r in rows), path, report)


def _nli_rows(rows, path: Path, report: ReadReport) -> pd.DataFrame:
    out = []
    for premise, hypothesis, label in rows:
        report.rows_read += 1
        if isinstance(label, str) and label.strip() == NO_CONSENSUS:
            report.dropped_no_consensus += 1
            continue
        out.append((premise, hypothesis, canonical_label(label, source=str(path))))
    if not out:
        raise DataError(f"{path} holds no labelled pairs")
    return pd.DataFrame(out, columns=["premise", "hypothesis", "label"])


def read_xnli_mt(folder: str | Path, *, lang: str, report: ReadReport | None = None) -> pd.DataFrame:
    """XNLI-MT translate-train data: ``multinli.train.<lang>.tsv`` (header ``premise hypo label``;
    labels are words, ``contradictory`` for contradiction)."""
    path, rows = xnli_mt_rows(folder, lang=lang)
    return _nli_rows(((r["premise"], r["hypo"], r["label"]) for r in rows), path,
                     report or ReadReport(str(path)))


def xnli_mt_rows(folder: str | Path, *, lang: str) -> tuple[Path, list[dict]]:
    """The rows of ``multinli.train.<lang>.tsv`` in file order (``premise``, ``hypo``, ``label``):
    the files of one XNLI-1.0-MT folder are parallel row by row."""
    path = Path(folder) / f"multinli.train.{lang}.tsv"
    if not path.is_file():
        raise DataError(f"XNLI-MT file {path} not found; point the task's path at the XNLI-1.0-MT "
                        "folder holding multinli.train.<lang>.tsv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"premise", "hypo", "label"} <= set(rows[0]):
        raise DataError(f"{path}: expected a header 'premise<TAB>hypo<TAB>label'")
    return path, rows


def attach_labels(frame: pd.DataFrame, labelled: str | Path, *, lang: str | None = None) -> pd.DataFrame:
    """Give a row-parallel, unlabelled XNLI frame (XTREME test) the labels of a labelled file.

    ``labelled`` is ``premise \t hypothesis \t label`` with one row per item, in the items' order
    (e.g. XGLUE's German XNLI test). When ``lang`` names the file's language, its hypotheses must
    match that language's rows (compared without surrounding spaces), so a wrong file is caught.
    """
    path = Path(labelled)
    if not path.is_file():
        raise DataError(f"labelled parallel file {path} not found")
    rows = [line.split("\t") for line in text_lines(path) if line.strip()]
    ids = frame["id"].drop_duplicates().tolist()
    if len(rows) != len(ids) or any(len(r) != 3 for r in rows):
        raise DataError(f"{path}: expected {len(ids)} rows of premise, hypothesis, label to match "
                        f"the items; found {len(rows)}")
    if lang is not None:
        mine = frame[frame["lang"] == lang]["hypothesis"].str.strip().tolist()
        theirs = [r[1].strip() for r in rows]
        mismatched = sum(a != b for a, b in zip(mine, theirs))
        if mismatched:
            raise DataError(f"{path}: {mismatched} hypotheses differ from the {lang!r} rows; "
                            "the file is not row-parallel with these items")
    labels = dict(zip(ids, (canonical_label(r[2], source=str(path)) for r in rows)))
    out = frame.copy()
    out["label"] = out["id"].map(labels)
    return out


def load_mnli_hub(hub_id: str, *, split: str, max_examples: int | None, config: str | None = None,
                  report: ReadReport | None = None) -> pd.DataFrame:
    """Load MultiNLI from the hub: ``nyu-mll/multi_nli``, or ``nyu-mll/glue`` with config ``mnli``.

    Rows labelled -1 (no consensus, or test) are dropped and counted.
    """
    require_hub(
        f"MultiNLI ({hub_id})",
        fix="Set mnli.source: local with mnli.path: <a MultiNLI file: JSONL, multinli_1.0 .jsonl or "
            ".txt, or GLUE TSV>, or use mnli.source: sample; or fetch it where the hub can be reached: "
            "xnli-study prefetch.",
        datasets=[(hub_id, None)],
    )
    import datasets

    ds = datasets.load_dataset(hub_id, config, split=split)
    source = f"hub:{hub_id}" + (f"/{config}" if config else "")
    frame = nli_from_hub_dataset(ds, source=source, report=report)
    return frame.iloc[:max_examples] if max_examples else frame


def nli_from_hub_dataset(ds, *, source: str, report: ReadReport | None = None) -> pd.DataFrame:
    """A hub NLI dataset (premise, hypothesis, ClassLabel label) in the canonical label space.

    The dataset's own label names are checked against the documented order in ``INT_LABELS``.
    """
    check_label_names(ds, "label", INT_LABELS[source], source=source)
    df = ds.to_pandas()
    report = report or ReadReport(source)
    report.rows_read += len(df)
    labels = [canonical_label(int(x), source=source) for x in df["label"]]
    frame = pd.DataFrame({"premise": df["premise"], "hypothesis": df["hypothesis"], "label": labels})
    report.dropped_no_consensus += int((frame["label"] < 0).sum())
    return frame[frame["label"] >= 0].reset_index(drop=True)


def subsample(frame: pd.DataFrame, n: int | None, *, seed: int = 0) -> pd.DataFrame:
    """A seeded random subset of ``n`` rows (all rows when ``n`` is None or larger)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


# ---- the study's data, as the params name it ------------------------------------------------------
def nli_as_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """An NLI frame (premise, hypothesis, label) in the trainer's ``text_a, text_b, label`` shape."""
    return pd.DataFrame({"text_a": frame["premise"].values, "text_b": frame["hypothesis"].values,
                         "label": frame["label"].values})


def sample_folder(config, run_dir: str | Path) -> Path:
    """The run's copy of the synthetic sample, written on first use (``xnli_study.sample``)."""
    folder = RunFolder(run_dir).sample
    settings = config.sample_settings()
    if not is_written(folder, settings):  # missing, or written for other settings
        write_sample(folder, settings)
    return folder


@contextmanager
def readable_text(what: str, path: str | Path):
    """Bytes that are not UTF-8 in a data file become one ``DataError`` naming the file."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise DataError(f"{what} {path}: bytes that are not UTF-8 ({err.reason} at byte {err.start}); "
                        "save the file as UTF-8") from None


def load_xnli(config, *, split: str, run_dir: str | Path) -> pd.DataFrame:
    """XNLI ``split`` (dev or test) for the params' languages, checked parallel and capped."""
    x = config.xnli
    languages = config.languages
    if x.source == "sample":
        frame = read_xnli_official(xnli_folder(sample_folder(config, run_dir)), split=split, languages=languages)
    elif x.source in ("official", "xtreme"):
        reader = read_xnli_official if x.source == "official" else read_xnli_xtreme
        with readable_text("xnli.path", config.data_path(x.path)):
            frame = reader(config.data_path(x.path), split=split, languages=languages)
        if x.labels_from and (frame["label"] < 0).all():
            with readable_text("xnli.labels_from", config.data_path(x.labels_from)):
                frame = attach_labels(frame, config.data_path(x.labels_from),
                                      lang=x.labels_lang if x.labels_lang in languages else None)
    else:
        frame = load_xnli_hub(x.hub_id, split=split, languages=languages)
    frame = cap_items(frame, x.max_items, seed=x.items_seed)
    check_parallel(frame)
    return frame


def load_mnli(config, *, run_dir: str | Path, report: ReadReport | None = None) -> pd.DataFrame:
    """English MultiNLI training pairs for the target stage, subsampled to ``mnli.max_examples``."""
    m = config.mnli
    if m.source == "sample":
        frame = read_nli_jsonl(mnli_file(sample_folder(config, run_dir)), report=report)
    elif m.source == "local":
        with readable_text("mnli.path", config.data_path(m.path)):
            frame = read_mnli_file(config.data_path(m.path), report=report)
    else:
        frame = load_mnli_hub(m.hub_id, split=m.split, config=m.hub_config, max_examples=None, report=report)
    return subsample(frame, m.max_examples)
