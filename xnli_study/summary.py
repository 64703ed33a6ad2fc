"""The run's headline numbers: ``summary.json``, computed from the run's tables.

:func:`build_summary` reads the tables the stages wrote (through :class:`~xnli_study.runfolder.RunFolder`),
computes the statistics (:mod:`xnli_study.stats`) and returns one dict; accuracies in [0, 1].
The words that describe these numbers are in :mod:`xnli_study.narrative`, the HTML in
:mod:`xnli_study.render`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .alignment import headline_layer
from .files import read_table
from .config import looks_like_path
from .languages import NLI_LABELS, encoder_label
from .progress import StageProgress
from .latex import comparisons_latex, results_latex
from .runfolder import RunFolder
from .sample import ANCHOR_GROUPS
from .stages import read_record
from .tasks import get_task

#: Published zero-shot XNLI test accuracy (%), STUDY.md section 5.
REFERENCE_NUMBERS = pd.DataFrame([
    ("google-bert/bert-base-multilingual-cased", "mBERT (cased)", 82.1, 66.3, "XLM-R paper, Table 1"),
    ("FacebookAI/xlm-roberta-base", "XLM-R base", 85.8, 76.2, "XLM-R paper, Table 1 (mean of 5 seeds)"),
    ("FacebookAI/xlm-roberta-large", "XLM-R large", 89.1, 80.9, "XLM-R paper, Table 1"),
    ("FacebookAI/xlm-roberta-large", "XLM-R large (XTREME recipe)", np.nan, 79.2, "XTREME"),
    ("FacebookAI/xlm-roberta-large", "XLM-R large + English intermediate task (X-STILTs)", np.nan, 80.4,
     "Phang et al. 2020"),
    ("", "X-BiLSTM (XNLI paper baseline)", 73.7, 65.6, "XNLI paper"),
], columns=["hub_id", "model", "en", "avg_15", "source"])


def references_for(encoder: str) -> pd.DataFrame:
    """Published numbers for ``encoder`` (matched on the hub id's model name); empty if none."""
    tail = encoder.rstrip("/").split("/")[-1].lower()
    match = REFERENCE_NUMBERS["hub_id"].str.split("/").str[-1].str.lower() == tail
    return REFERENCE_NUMBERS[match & (REFERENCE_NUMBERS["hub_id"] != "")].reset_index(drop=True)


def build_summary(run) -> dict:
    """Collect the run's headline numbers into ``summary.json`` (accuracies in [0, 1]).

    ``run`` is the report stage's :class:`~xnli_study.stages.StageRun`: its config and run folder,
    and the writers of the tables computed here (intervals, comparisons, alignment vs transfer)."""
    config, run_dir = run.config, Path(run.run_dir)
    folder = RunFolder(run_dir)
    acc = read_table(folder.table("accuracy"))
    acc_mean = read_table(folder.table("accuracy_mean"))
    transfer = read_table(folder.table("transfer_summary"))
    align = read_table(folder.table("alignment"))
    # the encoder's depth as the alignment stage measured it (alignment.layers may be a subset)
    recorded = (read_record(run_dir, "alignment") or {}).get("summary", {})
    n_layers = int(recorded.get("n_layers", align["layer"].max()))
    head = headline_layer(config.alignment.headline_layer, n_layers)
    resampling = {"resamples": config.stats.resamples, "seed": config.stats.seed}
    preds = read_table(folder.table("predictions"))
    # the three bootstraps, reported as they run
    progress = StageProgress("report", 3, noun="statistic")
    draws = f"{config.stats.resamples:,} bootstrap draws"
    progress.start(f"accuracy intervals, {draws}")
    ci = stats.accuracy_intervals(preds, **resampling)
    progress.done(f"accuracy intervals, {draws}")
    progress.start(f"comparisons with the baseline, {draws}")
    comparisons = stats.compare_conditions(preds, baseline="none", correct_across=config.stats.correct_across,
                                           **resampling)
    progress.done(f"comparisons with the baseline, {draws}")
    run.save_table("accuracy_ci", ci)
    run.save_table("comparisons", comparisons)
    items = int(acc.groupby(["condition", "seed", "lang"])["n"].first().min())
    run.save_text("results_tex", results_latex(ci, seeds=len(config.seeds), items=items))
    run.save_text("comparisons_tex", comparisons_latex(comparisons, seeds=len(config.seeds)))

    def nested(frame: pd.DataFrame, value: str) -> dict:
        return {c: {r["lang"]: float(r[value]) for _, r in g.iterrows()}
                for c, g in frame.groupby("condition", sort=False)}

    transfer_mean = transfer.groupby("condition", sort=False)[["en", "avg_all", "avg_non_en", "transfer_gap"]].mean()
    non_en = align[align["lang"] != "en"]
    at_head = non_en[non_en["layer"] == head]
    alignment = {}
    for (stage, cond), g in at_head.groupby(["stage", "condition"], sort=False):
        per_metric = g.groupby("metric")["value"].mean()
        alignment[encoder_label(stage, cond)] = {m: float(v) for m, v in per_metric.items()}
    p_curve = non_en[(non_en["stage"] == "pretrained") & (non_en["metric"] == "retrieval")]
    by_layer = p_curve.groupby("layer")["value"].mean()
    retrieval_best = {}
    for (stage, cond), g in non_en[non_en["metric"] == "retrieval"].groupby(["stage", "condition"], sort=False):
        per = g.groupby(["layer", "lang"])["value"].mean().unstack("lang")  # mean over seeds
        best = int(per.mean(axis=1).idxmax())
        retrieval_best[encoder_label(stage, cond)] = {"layer": best, **per.loc[best].to_dict()}
    progress.start(f"alignment against transfer, {draws}")
    relation, points = stats.alignment_vs_transfer(align, preds, layer=head, metric="retrieval", **resampling)
    progress.done(f"alignment against transfer, {draws}")
    run.save_table("alignment_vs_transfer", points)
    inter = read_table(folder.table("intermediate_results"))
    sizes = training_sizes(read_table(folder.table("training_data")), inter)
    probe = read_table(folder.table("probe_set")) if folder.table("probe_set").exists() else None
    selection = read_table(folder.table("selection"))
    summary = {
        "profile": config.profile,
        "run_name": config.run_name,
        "encoder": config.encoder.name,
        "seeds": config.seeds,
        "conditions": config.conditions,
        "languages": config.languages,
        "xnli_source": config.xnli.source,
        "xnli_split": config.xnli.eval_split,
        "items_per_language": int(acc.groupby(["condition", "seed", "lang"])["n"].first().min()),
        "sizes": {**sizes,
                  "probe_sentences_per_language": int(probe["sid"].nunique()) if probe is not None else None},
        # zero-shot, or translate-train for tasks that train on the evaluation languages' text
        "setting": {c: "zero-shot" if c == "none" else get_task(c).setting for c in config.conditions},
        # tasks built to change alignment (contrastive, on text of the evaluation languages, no labels)
        "alignment_tasks": {c: get_task(c).format for c in config.intermediate_conditions
                            if get_task(c).is_alignment},
        "design": design(config, sizes),
        "intermediate": intermediate_scores(inter),
        "label_shares": label_shares(preds),
        "xnli_accuracy": nested(acc_mean, "mean"),
        "xnli_accuracy_sd": nested(acc_mean, "sd"),
        # 95% bootstrap intervals (seeds, then items), with the means over languages
        "xnli_accuracy_ci95": {c: {r["lang"]: [float(r["ci_low"]), float(r["ci_high"])] for _, r in g.iterrows()}
                               for c, g in ci.groupby("condition", sort=False)},
        "xnli_accuracy_avg": {c: {r["lang"]: float(r["mean"]) for _, r in g[g["lang"].str.startswith("avg")].iterrows()}
                              for c, g in ci.groupby("condition", sort=False)},
        "comparisons": {c: {r["lang"]: {"delta": float(r["delta"]), "ci95": [float(r["ci_low"]), float(r["ci_high"])],
                                        "p": float(r["p"]), "p_holm": float(r["p_holm"]),
                                        "significant": _claim(r["significant"])}
                            for _, r in g.iterrows()}
                        for c, g in comparisons.groupby("condition", sort=False)},
        "alignment_vs_transfer": relation,
        # English dev accuracy of each MNLI run's selected checkpoint
        "selection_dev_en": {c: {str(int(r["seed"])): float(r["dev_en_accuracy"]) for _, r in g.iterrows()}
                             for c, g in selection.groupby("condition", sort=False)},
        "stats": {**resampling, "level": 0.95, "baseline": "none", "min_seeds": stats.MIN_SEEDS,
                  "seeds": len(config.seeds), "correct_across": config.stats.correct_across,
                  "intervals": ("percentile bootstrap resampling seeds and test items (crossed; the same "
                                "draws for every condition)" if len(config.seeds) >= stats.MIN_SEEDS else
                                f"percentile bootstrap over test items only ({_plural_seeds(len(config.seeds))}: "
                                "run-to-run variation is not sampled)"),
                  "significance": (f"claimed where Holm-adjusted p < 0.05 ({len(config.seeds)} seeds)"
                                   if len(config.seeds) >= stats.MIN_SEEDS else
                                   f"not claimed: {_plural_seeds(len(config.seeds))}; a test needs at least "
                                   f"{stats.MIN_SEEDS} (significant: null)"),
                  "p_values": "two-sided paired bootstrap (the same draws as the intervals), Holm-corrected: "
                              + stats.family_in_words(config.stats.correct_across,
                                                      n_conditions=len(config.intermediate_conditions),
                                                      n_languages=len(config.languages)),
                  "correlation": relation["method"]},
        "references": [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                       for r in references_for(config.encoder.name).drop(columns="hub_id").to_dict("records")],
        "transfer": {c: {k: float(v) for k, v in row.items()} for c, row in transfer_mean.iterrows()},
        "chance": 1 / 3,
        # the synthetic world's planted answer and whether this run found it (sample data only)
        "planted": planted(config, nested(acc_mean, "mean"), comparisons, alignment),
        "alignment": {
            "headline_layer": head, "n_layers": n_layers,
            "pooling": "mean over real tokens, special tokens and padding excluded",
            "layer_0": "embedding output",
            "best_layer_pretrained_retrieval": int(by_layer.idxmax()) if len(by_layer) else None,
            "cka": "cka_debiased is the headline (unbiased HSIC estimator); cka is the biased estimate",
            # the value for unrelated vectors: 1 / probe sentences for retrieval, 1 / languages for
            # the language-identity probes
            "retrieval_chance": _chance(non_en, "retrieval"),
            "language_id_chance": _chance(non_en, "language_id"),
            "at_headline_layer": alignment,
            # en <-> X retrieval (mean of both directions) per language, at each encoder's best
            # layer (the layer with the highest mean over the non-English languages)
            "retrieval_at_best_layer": retrieval_best,
        },
    }
    summary = _rounded(summary)
    run.save_summary(summary)
    return summary


def training_sizes(training: pd.DataFrame, intermediate: pd.DataFrame) -> dict:
    """How many examples each training stage used, of how many it had (``available``: rows read
    minus rows dropped for no gold label, no usable answer or, for alignment pairs, a repeat or an
    XNLI dev/test sentence, before subsampling). Tasks also hold
    out a tenth for their own held-out score: ``trained`` counts what remained."""
    rows = training.set_index("dataset")
    available = (rows["rows_read"] - rows.get("dropped_no_consensus", 0) - rows.get("dropped_unusable", 0)
                 - rows.get("dropped_eval_overlap", 0))
    sizes = {"mnli": {"trained": int(rows.loc["mnli", "used"]), "available": int(available["mnli"])}
             if "mnli" in rows.index else {}, "tasks": {}}
    for cond, g in intermediate.groupby("condition", sort=False):
        sizes["tasks"][cond] = {"trained": int(g["train_examples"].iloc[0]),
                                "held_out": int(g["heldout_examples"].iloc[0]),
                                "available": int(available.get(cond, g["train_examples"].iloc[0]))}
    return sizes


def design(config, sizes: dict) -> dict:
    """What the profile is made of, for the generated limits: the encoder, where each dataset comes
    from, the splits, the seeds and what was subsampled."""
    name = config.encoder.name
    if name == "tiny":
        kind = "tiny"
    elif name.startswith("package:"):
        kind = "package"
    elif looks_like_path(name) or config.path(name).is_dir():
        kind = "folder"
    else:
        kind = "hub"
    return {
        "encoder": name, "encoder_kind": kind,
        "random_init": kind == "tiny" and config.encoder.tiny.pretrain_epochs == 0,
        "xnli_source": config.xnli.source, "mnli_source": config.mnli.source,
        "task_sources": {t: config.task_data(t).source for t in config.intermediate_conditions},
        "synthetic": config.xnli.source == "sample",
        "eval_split": config.xnli.eval_split, "selection_split": "dev",
        "labels_from": Path(config.xnli.labels_from).name if config.xnli.labels_from else None,
        "max_items": config.xnli.max_items, "seeds": len(config.seeds),
        # caps that bound: the data had more rows than the cap kept
        "subsampled": {k: cap for k, cap, size in
                       [("mnli", config.mnli.max_examples, sizes.get("mnli", {})),
                        *((t, config.task_data(t).max_examples, sizes.get("tasks", {}).get(t, {}))
                          for t in config.intermediate_conditions)]
                       if cap and size.get("available", 0) > cap},
    }


#: the share of the high-anchor languages' accuracy that the positive control expects at least
PLANTED_HIGH_ANCHOR_MIN = 0.45
#: the alignment tasks whose effect the world plants (STUDY.md section 8)
PLANTED_TASKS = ("parallel_align",)


def planted(config, accuracy: dict, comparisons: pd.DataFrame, alignment: dict) -> dict | None:
    """What the synthetic world plants and whether the run detected it (None for real data).

    Planted: transfer graded by anchor share (the high-anchor languages at least
    :data:`PLANTED_HIGH_ANCHOR_MIN` under the baseline, and above the low-anchor group on average),
    and ``parallel_align`` raising retrieval at the headline layer and the non-English mean accuracy
    (``F_t`` against ``F[none]``; detected when retrieval rose and the interval of the accuracy
    change is above 0).
    """
    if config.xnli.source != "sample":
        return None
    shares = config.sample.shares()
    base = accuracy.get("none", {})
    groups = {}
    for group, langs in ANCHOR_GROUPS.items():
        present = [lang for lang in langs if lang in base]
        if present:
            groups[group] = {"languages": present, "anchor_share": float(np.mean([shares[x] for x in present])),
                             "baseline_accuracy": float(np.mean([base[x] for x in present]))}
    high, low = groups.get("high"), groups.get("low")
    gradient = {
        "high_anchor_min": PLANTED_HIGH_ANCHOR_MIN,
        "high_anchor_at_least_min": (all(base[x] >= PLANTED_HIGH_ANCHOR_MIN for x in high["languages"])
                                     if high else None),
        "high_above_low": high["baseline_accuracy"] > low["baseline_accuracy"] if high and low else None,
    }
    tasks = {}
    for cond in config.intermediate_conditions:
        if cond not in PLANTED_TASKS:  # other alignment tasks are exploratory here
            continue
        row = comparisons[(comparisons["condition"] == cond) & (comparisons["lang"] == "avg_non_en")]
        if row.empty:
            continue
        row = row.iloc[0]
        before = alignment.get("F[none]", {}).get("retrieval")
        after = alignment.get(f"F[{cond}]", {}).get("retrieval")
        tasks[cond] = {"accuracy_delta": float(row["delta"]),
                       "accuracy_ci95": [float(row["ci_low"]), float(row["ci_high"])],
                       "retrieval_none": before, "retrieval": after,
                       "retrieval_raised": None if before is None or after is None else after > before,
                       # both halves of the planted answer: alignment up, and accuracy up beyond items' noise
                       "detected": bool(row["ci_low"] > 0) and not (before is not None and after is not None
                                                                    and after <= before)}
    return {"anchor_groups": groups, "gradient": gradient, "alignment_tasks": tasks}


def intermediate_scores(results: pd.DataFrame) -> dict:
    """Each intermediate task's held-out score (mean over seeds), its metric, chance and size."""
    out = {}
    for cond, g in results.groupby("condition", sort=False):
        score = g["heldout_accuracy"].dropna()
        f1 = g["heldout_f1"].dropna() if "heldout_f1" in g else pd.Series(dtype=float)
        out[cond] = {"metric": str(g["heldout_metric"].iloc[0]),
                     "score": float(score.mean()) if len(score) else None,
                     "f1": float(f1.mean()) if len(f1) else None,  # SQuAD F1 (extractive QA)
                     "chance": float(g["chance"].iloc[0]) if g["chance"].notna().any() else None,
                     # alignment tasks: P's retrieval on the same held-out pairs
                     "pretrained": (float(g["heldout_pretrained"].mean())
                                    if "heldout_pretrained" in g and g["heldout_pretrained"].notna().any() else None),
                     "held_out": int(g["heldout_examples"].iloc[0])}
    return out


def label_shares(predictions: pd.DataFrame) -> dict:
    """The share of each label among the gold labels (per language) and among the predictions (per
    condition and language, over seeds), in [0, 1]: a model that predicts one label for most items
    of a language shows here."""
    names = dict(enumerate(NLI_LABELS))
    first = predictions[predictions["condition"] == predictions["condition"].iloc[0]]
    first = first[first["seed"] == first["seed"].iloc[0]]
    gold = {lang: g["label"].map(names).value_counts(normalize=True).reindex(NLI_LABELS, fill_value=0).to_dict()
            for lang, g in first.groupby("lang", sort=False)}
    predicted = {}
    for (cond, lang), g in predictions.groupby(["condition", "lang"], sort=False):
        shares = g["pred"].map(names).value_counts(normalize=True).reindex(NLI_LABELS, fill_value=0)
        predicted.setdefault(cond, {})[lang] = {k: float(v) for k, v in shares.items()}
    return {"gold": {lang: {k: float(v) for k, v in d.items()} for lang, d in gold.items()}, "predicted": predicted}


def _chance(table: pd.DataFrame, metric: str) -> float | None:
    values = table.loc[table["metric"] == metric, "chance"] if "chance" in table else pd.Series(dtype=float)
    return float(values.mean()) if values.notna().any() else None


def _claim(value) -> bool | None:
    """A significance flag as JSON: true, false, or null (no claim: too few seeds)."""
    return None if value is None or value != value else bool(value)


def _plural_seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _rounded(value, digits: int = 6):
    if isinstance(value, float):
        return None if value != value else round(value, digits)  # NaN (undefined) -> null
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value
