"""The layout of a run folder: the one place that knows where each output of a run lives.

Every other module asks :class:`RunFolder` for a path (``folder.table("accuracy")``,
``folder.record("data")``, ``folder.model("sst2", 0, "intermediate")``); no file name of the run
folder is written anywhere else. ``outputs/README.md`` shows :func:`layout_markdown`, and a test
keeps the two in step (``python -m xnli_study.runfolder`` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


#: the layout and record format of a run folder; a folder written with another version is refused
#: (its records cannot be trusted), and the manifest says which version wrote it. 1: stage records
#: only; 2: unit records, mid-training checkpoints
RUN_FOLDER_VERSION = 2


@dataclass(frozen=True)
class Entry:
    """One file or folder of a run: where it lives (relative to the run folder) and what it holds."""

    path: str
    what: str


#: the files at the top of a run folder
PARAMS = Entry("params.yaml", "the resolved params (absolute paths)")
MANIFEST = Entry("manifest.json", "versions, git commit, seeds, params fingerprint, stage status and timings,\n"
                                  "SHA-256 of every local data file, commit of every hub model and dataset")
SUMMARY = Entry("summary.json", "headline numbers (accuracies in [0, 1], mean over seeds), their 95% intervals,\n"
                                "comparisons with the baseline, alignment vs transfer")
REPORT_HTML = Entry("report.html", "the report: executed notebooks stitched together, code hidden, figures embedded")
REPORT_PNG = Entry("report.png", "a full-page screenshot of the report (written by the browser test)")
LAB_PNG = Entry("lab.png", "notebook 03 executed in JupyterLab, a screenshot (written by the lab test)")
NOTEBOOKS = Entry("notebooks/", "executed stage notebooks (01_data_inspection ... 05_report)")
STAGES = Entry("stages/<stage>.json", "completion record: params fingerprint, upstream records, outputs (written last);\n"
                                      "render.json for report.html")
UNITS = Entry("units/<stage>/<unit>/",
              "one unit of work of a stage (a task and seed's training, one checkpoint's alignment):\n"
              "record.json (its key, the settings it read, its outputs; written last), its own\n"
              "tables, while it trains checkpoints/ (to resume from, unless checkpoint_every is\n"
              "off; removed when it ends), and for a data-parallel training launch.log (the output\n"
              "of accelerate launch)")
#: the files inside a unit's folder
UNIT_FILES = {"record": "record.json", "log": "log.csv", "predictions": "predictions.parquet",
              "metrics": "metrics.csv", "failed": "failed.json", "checkpoints": "checkpoints",
              "checkpoint_key": "checkpoints/unit-key.txt", "launch_log": "launch.log"}
FIGURES = Entry("figures/<name>.png", "every figure as PNG, and as PDF (vector) beside it: <name>.pdf")
INTERMEDIATE = Entry("models/<task>/seed<k>/intermediate/", "I_t: the encoder only (the task head is dropped)")
FINAL = Entry("models/<condition>/seed<k>/final/", "F_t: encoder + NLI head, selected on English dev")
EMBEDDINGS = Entry("cache/embeddings/<key>/",
                   "float16 sentence vectors per language; key = weights + probe set + settings")
TOKENIZED = Entry("cache/tokenized/<key>/",
                  "tokenised training data (Arrow); key = tokenizer + data + format + max length")
LOGS = Entry("logs/<stage>/<unit>/", "each training's TensorBoard event files (training.report_to: [tensorboard])")
SAMPLE = Entry("data/sample/", "the synthetic sample (profiles that use it)")
SHARDS = Entry("shards/<i>-of-<n>/",
               "one shard's own files (xnli-study run --shard I/N): params.yaml, log.txt (its\n"
               "command-line log), manifest.json (its units, status and timings)")
#: the files inside a shard's folder; its lock is held while it runs (a second copy is refused)
SHARD_FILES = {"params": "params.yaml", "log": "log.txt", "manifest": "manifest.json", "lock": ".lock"}
LOCK = Entry(".lock", "held by whatever runs in the folder: shared by shards, alone by a run without --shard")
DATA_LOCK = Entry(".lock-data", "held by the shard that prepares the data stage while the others wait")

#: tidy tables, by the key the stages save and read them under
TABLES: dict[str, Entry] = {
    "xnli_counts": Entry("xnli_counts.csv", "items, labels, distinct premises per split and language"),
    "token_lengths": Entry("token_lengths.csv",
                           "tokens per sentence and per word, unknown-token share, per language"),
    "parallel": Entry("parallel.csv", "are the languages parallel (same items, same labels)?"),
    "training_data": Entry("training_data.csv",
                           "MNLI and task rows read, dropped (no gold label; no usable answer) and used,\n"
                           "label balance"),
    "xnli_examples": Entry("xnli_examples.csv", "one dev item per language"),
    "intermediate_log": Entry("intermediate_log.csv", "intermediate training: loss and held-out score per step"),
    "intermediate_results": Entry("intermediate_results.csv",
                                  "intermediate training: examples, held-out score and chance per task and seed"),
    "predictions": Entry("predictions.parquet",
                         "one row per condition, seed, language and item: label, pred, correct, and\n"
                         "p0 p1 p2, the predicted probabilities (labels everywhere: 0 entailment,\n"
                         "1 neutral, 2 contradiction; -1 unlabelled)"),
    "accuracy": Entry("accuracy.csv", "accuracy per condition, seed and language"),
    "accuracy_mean": Entry("accuracy_mean.csv", "mean and sd over seeds"),
    "accuracy_ci": Entry("accuracy_ci.csv",
                         "per condition and language (and avg, avg_non_en): mean, sd over seeds, 95%\n"
                         "bootstrap interval (seeds, then items)"),
    "comparisons": Entry("comparisons.csv", "each condition minus the baseline: delta, 95% interval, p, Holm-adjusted p"),
    "results_tex": Entry("results.tex", "accuracy_ci as a LaTeX table (booktabs): conditions x languages"),
    "comparisons_tex": Entry("comparisons.tex", "comparisons as a LaTeX table (booktabs), significant cells marked"),
    "transfer_summary": Entry("transfer_summary.csv",
                              "per condition and seed: en, mean over all, mean over non-English, transfer gap"),
    "selection": Entry("selection.csv", "MNLI model selection on English dev: best step and accuracy per run"),
    "mnli_log": Entry("mnli_log.csv", "MNLI training: loss and English dev accuracy per step"),
    "probe_set": Entry("probe_set.parquet", "the deduplicated parallel probe sentences"),
    "alignment": Entry("alignment.csv", "checkpoint, stage, condition, seed, layer, lang, metric, value,\n"
                                        "chance (the value of unrelated vectors)"),
    "alignment_changes": Entry("alignment_changes.csv",
                               "intermediate - pretrained, final - final[none], per layer, language, metric"),
    "alignment_vs_transfer": Entry("alignment_vs_transfer.csv",
                                   "per condition and language: change in retrieval and in accuracy"),
}
TABLES_DIR = "tables"


def _top(entry: Entry) -> property:
    """A read-only path attribute for a file at the top of the run folder."""
    return property(lambda self: self.root / entry.path, doc=f"``{entry.path}``: {entry.what}")


class RunFolder:
    """Paths inside one run folder. Nothing is created by asking; writers create parents."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def _at(self, entry: Entry, **parts: str) -> Path:
        rel = entry.path.rstrip("/")
        for key, value in parts.items():
            rel = rel.replace(f"<{key}>", str(value))
        return self.root / rel

    # ---- the files at the top: params, manifest, summary, report_html, report_png, lab_png ----
    params = _top(PARAMS)
    manifest = _top(MANIFEST)
    summary = _top(SUMMARY)
    report_html = _top(REPORT_HTML)
    report_png = _top(REPORT_PNG)
    lab_png = _top(LAB_PNG)

    # ---- stages -----------------------------------------------------------------------------
    def executed(self, notebook: str) -> Path:
        """The executed copy of a stage notebook."""
        return self._at(NOTEBOOKS) / notebook

    def record(self, stage: str) -> Path:
        """The completion record of ``stage`` (written last)."""
        return self._at(STAGES, stage=stage)

    # ---- units ------------------------------------------------------------------------------
    def unit(self, stage: str, unit: str, file: str | None = None) -> Path:
        """The folder of one unit of ``stage``, or its ``file`` (a key of :data:`UNIT_FILES`)."""
        folder = self._at(UNITS, stage=stage, unit=unit)
        return folder / UNIT_FILES[file] if file else folder

    def units(self, stage: str) -> Path:
        """The folder holding every unit of ``stage``."""
        return self._at(UNITS, stage=stage, unit="-").parent

    # ---- tables and figures -----------------------------------------------------------------
    def table(self, key: str) -> Path:
        """The tidy table saved under ``key`` (a key of :data:`TABLES`)."""
        try:
            entry = TABLES[key]
        except KeyError:
            raise KeyError(f"unknown table {key!r}; known: {', '.join(TABLES)}") from None
        return self.root / TABLES_DIR / entry.path

    def figure(self, name: str) -> Path:
        return self._at(FIGURES, name=name)

    def logs(self, stage: str, unit: str) -> Path:
        """The TensorBoard event files of one training unit (``training.report_to``)."""
        return self._at(LOGS, stage=stage, unit=unit)

    # ---- models and caches ------------------------------------------------------------------
    def model(self, condition: str, seed: int, kind: str) -> Path:
        """``kind`` is ``intermediate`` (I_t, encoder only) or ``final`` (F_t)."""
        entry = {"intermediate": INTERMEDIATE, "final": FINAL}[kind]
        return self._at(entry, task=condition, condition=condition, k=seed)

    @property
    def embeddings_cache(self) -> Path:
        return self._at(EMBEDDINGS).parent

    @property
    def tokenized_cache(self) -> Path:
        return self._at(TOKENIZED).parent

    @property
    def sample(self) -> Path:
        return self._at(SAMPLE)

    def shard(self, index: int, count: int, file: str | None = None) -> Path:
        """The folder of shard ``index`` of ``count``, or its ``file`` (a key of :data:`SHARD_FILES`)."""
        folder = self._at(SHARDS, i=index, n=count)
        return folder / SHARD_FILES[file] if file else folder

    @property
    def shards(self) -> Path:
        return self._at(SHARDS, i=0, n=0).parent

    @property
    def lock(self) -> Path:
        return self._at(LOCK)

    @property
    def data_lock(self) -> Path:
        return self._at(DATA_LOCK)

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the run folder, as records list outputs."""
        return str(Path(path).resolve().relative_to(self.root.resolve()))


#: caches shared by the runs of one output folder (content-keyed: the pretrained tiny encoder)
SHARED_CACHE = Entry(".cache/pretrained/<key>/",
                     "beside the run folders: the pretrained tiny encoder P, keyed by its settings and corpus")


def shared_cache(output_dir: str | Path) -> Path:
    """The cache folder shared by every run in ``output_dir``."""
    return Path(output_dir) / SHARED_CACHE.path.split("/")[0]


#: the training throughput benchmarks/training_throughput.py measured here, for ``xnli-study plan``
THROUGHPUT = Entry(".cache/throughput.json", "beside the run folders: training tokens/s measured by "
                                             "benchmarks/training_throughput.py, by architecture")


def throughput_file(output_dir: str | Path) -> Path:
    """Where the throughput benchmark leaves its measurement for ``xnli-study plan``."""
    return Path(output_dir) / THROUGHPUT.path


def pretrained_cache(output_dir: str | Path, key: str) -> Path:
    """The folder of the pretrained tiny encoder with content key ``key``."""
    return Path(output_dir) / SHARED_CACHE.path.replace("<key>", key).rstrip("/")


#: the description written beside each embedding cache's vectors
EMBEDDINGS_META = "meta.json"


def table_name(key: str) -> str:
    """``tables/<file>`` of a table, for sentences that point a reader at it."""
    return f"{TABLES_DIR}/{TABLES[key].path}"


def layout_markdown() -> str:
    """The layout of a run folder as shown in ``outputs/README.md`` (a fenced block)."""
    width = 28

    def lines(path: str, what: str, indent: str = "") -> list[str]:
        first, *rest = what.split("\n")
        name = indent + path
        out = [f"{name:<{width}}{first}" if len(name) < width else f"{name} {first}"]
        return out + [" " * width + more for more in rest]

    out = ["```"]
    for entry in (PARAMS, MANIFEST, SUMMARY, REPORT_HTML, REPORT_PNG, LAB_PNG, NOTEBOOKS, STAGES, UNITS):
        out += lines(entry.path, entry.what)
    out.append(f"{TABLES_DIR}/")
    for entry in TABLES.values():
        out += lines(entry.path, entry.what, indent="  ")
    for entry in (FIGURES, INTERMEDIATE, FINAL, LOGS, EMBEDDINGS, TOKENIZED, SAMPLE, SHARDS, LOCK, DATA_LOCK):
        out += lines(entry.path, entry.what)
    out += ["", "and in the output folder, beside the run folders:"]
    out += lines(SHARED_CACHE.path, SHARED_CACHE.what.split(": ", 1)[1])
    out += lines(THROUGHPUT.path, THROUGHPUT.what.split(": ", 1)[1])
    out.append("```")
    return "\n".join(out)


def file_names() -> set[str]:
    """Every file and folder name the layout defines (for the test that they appear nowhere else)."""
    names = set()
    for entry in (PARAMS, MANIFEST, SUMMARY, REPORT_HTML, REPORT_PNG, LAB_PNG, *TABLES.values()):
        names.add(entry.path)
    return names


if __name__ == "__main__":
    print(layout_markdown())
