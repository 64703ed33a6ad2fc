"""Two run folders of the same design side by side: ``xnli-study compare RUN_A RUN_B``.

For checking a rerun or a change of recipe: every accuracy (condition x language, and the
averages over languages) and the headline alignment metrics of run B minus run A, each with a 95%
bootstrap interval (:mod:`xnli_study.stats`). Where the two runs scored the same seeds on the same
items the difference is paired (the same resampled seeds and items for both runs); otherwise each
run is resampled on its own. Alignment metrics are one number per checkpoint, so their intervals
resample seeds and need :data:`~xnli_study.stats.MIN_SEEDS` seeds in each run (none otherwise).
Differences are in [0, 1] units (``a``, ``b``, ``delta``, ``ci_low``, ``ci_high``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .alignment import headline_layer
from .config import load_params
from .errors import StudyError
from .files import read_table, save_figure, write_table
from .plots import run_differences
from .runfolder import RunFolder
from .stages import read_record

#: what ``compare`` writes into its folder
ACCURACY_FILE = "accuracy_diff.csv"
ALIGNMENT_FILE = "alignment_diff.csv"
FIGURE_FILE = "accuracy_diff.png"
#: the alignment metrics compared, at the headline layer
METRICS = ("retrieval", "cka_debiased")


@dataclass
class Comparison:
    """The differences B - A: ``accuracy`` (condition, lang, a, b, delta, ci_low, ci_high, p,
    paired, seeds_a, seeds_b, items), ``alignment`` (stage, condition, lang, metric, layer, a, b,
    delta, ci_low, ci_high, paired, seeds_a, seeds_b), and the folder they were written to."""

    run_a: Path
    run_b: Path
    accuracy: pd.DataFrame
    alignment: pd.DataFrame
    out: Path | None = None


def _read(run: Path, key: str, *, needed: bool) -> pd.DataFrame | None:
    path = RunFolder(run).table(key)
    if path.is_file():
        return read_table(path)
    if needed:
        raise StudyError(f"{run} has no {RunFolder(run).relative(path)}: its transfer stage has not run; "
                         f"run it first (xnli-study run --params {RunFolder(run).params})")
    return None


def _design(predictions: pd.DataFrame) -> tuple[list[str], list[str]]:
    return list(dict.fromkeys(predictions["condition"])), list(dict.fromkeys(predictions["lang"]))


def check_same_design(run_a: Path, pred_a: pd.DataFrame, run_b: Path, pred_b: pd.DataFrame) -> None:
    """Refuse, in one line, two runs whose conditions or languages differ."""
    (conds_a, langs_a), (conds_b, langs_b) = _design(pred_a), _design(pred_b)
    for what, a, b in (("conditions", conds_a, conds_b), ("languages", langs_a, langs_b)):
        if set(a) != set(b):
            raise StudyError(f"the runs differ in their {what} ({run_a.name}: {', '.join(a)}; {run_b.name}: "
                             f"{', '.join(b)}); compare needs two run folders of the same design")


def _difference(b: np.ndarray, a: np.ndarray, *, paired: bool, resamples: int, seed: int) -> stats.Interval:
    compare = stats.paired_comparison if paired else stats.independent_comparison
    return compare(b, a, resamples=resamples, seed=seed)


def accuracy_differences(pred_a: pd.DataFrame, pred_b: pd.DataFrame, *, resamples: int,
                         seed: int = 0) -> pd.DataFrame:
    """Accuracy of B minus A per condition and language (and ``avg``, ``avg_non_en``), paired
    where both runs scored the same seeds on the same items."""
    rows = []
    groups = stats.language_groups(pred_a["lang"])
    for cond in dict.fromkeys(pred_a["condition"]):
        table_a, table_b = stats.correctness_table(pred_a, cond), stats.correctness_table(pred_b, cond)
        for lang, members in groups.items():
            items_a = set(table_a.columns[table_a.columns.get_level_values("lang").isin(members)])
            items_b = set(table_b.columns[table_b.columns.get_level_values("lang").isin(members)])
            paired = list(table_a.index) == list(table_b.index) and items_a == items_b
            a, seeds_a = stats.correctness(table_a, members, name=f"A/{cond}")
            b, seeds_b = stats.correctness(table_b, members, seeds_a if paired else None, name=f"B/{cond}")
            r = _difference(b, a, paired=paired, resamples=resamples, seed=seed)
            rows.append({"condition": cond, "lang": lang, "a": float(a.mean()), "b": float(b.mean()),
                         "delta": r.estimate, "ci_low": r.low, "ci_high": r.high, "p": r.p, "paired": paired,
                         "seeds_a": len(seeds_a), "seeds_b": len(seeds_b), "items": a.shape[1]})
    return pd.DataFrame(rows)


def _headline(run: Path, align: pd.DataFrame) -> int:
    config = load_params(RunFolder(run).params)
    recorded = (read_record(run, "alignment") or {}).get("summary", {})
    return headline_layer(config.alignment.headline_layer, int(recorded.get("n_layers", align["layer"].max())))


def _per_seed(align: pd.DataFrame, *, layer: int) -> pd.DataFrame:
    """Headline-layer values of :data:`METRICS` per checkpoint, seed and non-English language,
    with ``avg_non_en`` (the mean over those languages) added."""
    rows = align[(align["layer"] == layer) & align["metric"].isin(METRICS) & (align["lang"] != "en")]
    key = ["stage", "condition", "seed", "metric"]
    avg = rows.groupby(key, sort=False, as_index=False)["value"].mean().assign(lang="avg_non_en")
    return pd.concat([rows[[*key, "lang", "value"]], avg], ignore_index=True)


def alignment_differences(align_a: pd.DataFrame, align_b: pd.DataFrame, *, layer_a: int, layer_b: int,
                          resamples: int, seed: int = 0) -> pd.DataFrame:
    """Headline alignment metrics of B minus A per checkpoint (P, each I_t, each F_t), language
    and metric; intervals over seeds (paired where both runs have the same seeds), only with
    :data:`~xnli_study.stats.MIN_SEEDS` seeds or more in each run."""
    if layer_a != layer_b:
        raise StudyError(f"the runs' headline layers differ ({layer_a} and {layer_b}); compare needs the same "
                         "encoder depth and alignment.headline_layer")
    a, b = _per_seed(align_a, layer=layer_a), _per_seed(align_b, layer=layer_b)
    rows = []
    for (stage, cond, lang, metric), group_a in a.groupby(["stage", "condition", "lang", "metric"], sort=False,
                                                          dropna=False):
        group_b = b[(b["stage"] == stage) & (b["condition"] == cond) & (b["lang"] == lang) & (b["metric"] == metric)]
        if group_b.empty:
            continue
        va, vb = group_a.set_index("seed")["value"], group_b.set_index("seed")["value"]
        paired = sorted(va.index) == sorted(vb.index)
        interval = (np.nan, np.nan)
        if min(len(va), len(vb)) >= stats.MIN_SEEDS:
            if paired:
                vb = vb.reindex(va.index)
            r = _difference(vb.to_numpy()[:, None], va.to_numpy()[:, None], paired=paired,
                            resamples=resamples, seed=seed)
            interval = (r.low, r.high)
        rows.append({"stage": stage, "condition": cond, "lang": lang, "metric": metric, "layer": layer_a,
                     "a": float(va.mean()), "b": float(vb.mean()), "delta": float(vb.mean() - va.mean()),
                     "ci_low": interval[0], "ci_high": interval[1], "paired": paired,
                     "seeds_a": len(va), "seeds_b": len(vb)})
    return pd.DataFrame(rows, columns=["stage", "condition", "lang", "metric", "layer", "a", "b", "delta",
                                       "ci_low", "ci_high", "paired", "seeds_a", "seeds_b"])


def compare_runs(run_a: str | Path, run_b: str | Path, *, out: str | Path | None = None,
                 resamples: int | None = None) -> Comparison:
    """Compare run folders ``run_a`` and ``run_b`` (B minus A) and write the tables and the figure
    into ``out`` (default: ``compare_<A>_vs_<B>`` beside run B). ``resamples`` defaults to run
    B's ``stats.resamples``."""
    run_a, run_b = Path(run_a).resolve(), Path(run_b).resolve()
    for run in (run_a, run_b):
        if not RunFolder(run).params.is_file():
            raise StudyError(f"{run} is not a run folder (it has no {RunFolder(run).params.name}); give the folders "
                             "that xnli-study run wrote, e.g. outputs/smoke")
    config_b = load_params(RunFolder(run_b).params)
    resamples = resamples or config_b.stats.resamples
    pred_a, pred_b = _read(run_a, "predictions", needed=True), _read(run_b, "predictions", needed=True)
    check_same_design(run_a, pred_a, run_b, pred_b)
    accuracy = accuracy_differences(pred_a, pred_b, resamples=resamples, seed=config_b.stats.seed)
    align_a, align_b = _read(run_a, "alignment", needed=False), _read(run_b, "alignment", needed=False)
    alignment = alignment_differences(align_a, align_b, layer_a=_headline(run_a, align_a),
                                      layer_b=_headline(run_b, align_b), resamples=resamples,
                                      seed=config_b.stats.seed) if align_a is not None and align_b is not None else None
    result = Comparison(run_a, run_b, accuracy, alignment if alignment is not None else pd.DataFrame())
    result.out = Path(out) if out else run_b.parent / f"compare_{run_a.name}_vs_{run_b.name}"
    write_table(result.out / ACCURACY_FILE, accuracy)
    if alignment is not None:
        write_table(result.out / ALIGNMENT_FILE, alignment)
    fig = run_differences(accuracy, label_a=run_a.name, label_b=run_b.name)
    png = save_figure(fig, result.out / FIGURE_FILE)
    save_figure(fig, png.with_suffix(".pdf"))
    return result


def format_comparison(result: Comparison) -> str:
    """The command line's summary: English and the non-English mean per condition, then the
    headline retrieval, B minus A in points with its interval."""

    def cell(row) -> str:
        interval = (f" [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"
                    if np.isfinite(row["ci_low"]) else " [no interval: fewer than 3 seeds]")
        return f"{100 * row['delta']:+.1f}{interval}"

    acc = result.accuracy
    lines = [f"B minus A, in points (95% bootstrap interval); A = {result.run_a}, B = {result.run_b}",
             "XNLI accuracy:"]
    for _, row in acc[acc["lang"].isin(["en", "avg_non_en"])].iterrows():
        how = "paired on seeds and items" if row["paired"] else "unpaired"
        lines.append(f"  {row['condition']:<16} {row['lang']:<11} {100 * row['a']:5.1f} -> {100 * row['b']:5.1f}  "
                     f"{cell(row)}  ({how}; seeds {row['seeds_a']}/{row['seeds_b']}, {row['items']} items)")
    al = result.alignment
    if len(al):
        head = al[(al["lang"] == "avg_non_en") & (al["metric"] == "retrieval")]
        lines.append(f"retrieval at layer {int(al['layer'].iloc[0])}, mean over non-English languages:")
        for _, row in head.iterrows():
            lines.append(f"  {row['stage']:<12} {row['condition']:<16} {100 * row['a']:5.1f} -> {100 * row['b']:5.1f}  "
                         f"{cell(row)}")
    lines.append(f"tables and figure: {result.out}")
    return "\n".join(lines)
