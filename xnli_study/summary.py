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
from .languages import encoder_label
from .runfolder import RunFolder
from .stages import read_record

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
    ci = stats.accuracy_intervals(preds, **resampling)
    comparisons = stats.compare_conditions(preds, baseline="none", **resampling)
    run.save_table("accuracy_ci", ci)
    run.save_table("comparisons", comparisons)

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
    relation, points = stats.alignment_vs_transfer(align, acc, layer=head, metric="retrieval", **resampling)
    run.save_table("alignment_vs_transfer", points)
    training = read_table(folder.table("training_data")).set_index("dataset")["used"]
    inter = read_table(folder.table("intermediate_results"))
    task_train = inter.groupby("condition", sort=False)["train_examples"].first()  # after the held-out split
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
        "sizes": {
            "mnli_train": int(training.get("mnli", 0)),
            "tasks": {t: int(task_train[t]) for t in config.intermediate_conditions if t in task_train},
            "probe_sentences_per_language": int(probe["sid"].nunique()) if probe is not None else None,
        },
        "xnli_accuracy": nested(acc_mean, "mean"),
        "xnli_accuracy_sd": nested(acc_mean, "sd"),
        # 95% bootstrap intervals (seeds, then items), with the means over languages
        "xnli_accuracy_ci95": {c: {r["lang"]: [float(r["ci_low"]), float(r["ci_high"])] for _, r in g.iterrows()}
                               for c, g in ci.groupby("condition", sort=False)},
        "xnli_accuracy_avg": {c: {r["lang"]: float(r["mean"]) for _, r in g[g["lang"].str.startswith("avg")].iterrows()}
                              for c, g in ci.groupby("condition", sort=False)},
        "comparisons": {c: {r["lang"]: {"delta": float(r["delta"]), "ci95": [float(r["ci_low"]), float(r["ci_high"])],
                                        "p": float(r["p"]), "p_holm": float(r["p_holm"]),
                                        "significant": bool(r["significant"])}
                            for _, r in g.iterrows()}
                        for c, g in comparisons.groupby("condition", sort=False)},
        "alignment_vs_transfer": relation,
        # English dev accuracy of each MNLI run's selected checkpoint
        "selection_dev_en": {c: {str(int(r["seed"])): float(r["dev_en_accuracy"]) for _, r in g.iterrows()}
                             for c, g in selection.groupby("condition", sort=False)},
        "stats": {**resampling, "level": 0.95, "baseline": "none",
                  "intervals": "percentile bootstrap resampling seeds and test items (crossed; the same "
                               "draws for every condition)",
                  "p_values": "two-sided paired bootstrap (the same draws as the intervals), Holm-corrected "
                              "across conditions, not across languages",
                  "correlation": "Spearman over (condition, language) points, bootstrap interval over points"},
        "references": [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                       for r in references_for(config.encoder.name).drop(columns="hub_id").to_dict("records")],
        "transfer": {c: {k: float(v) for k, v in row.items()} for c, row in transfer_mean.iterrows()},
        "chance": 1 / 3,
        "alignment": {
            "headline_layer": head, "n_layers": n_layers,
            "pooling": "mean over real tokens, special tokens and padding excluded",
            "layer_0": "embedding output",
            "best_layer_pretrained_retrieval": int(by_layer.idxmax()) if len(by_layer) else None,
            "at_headline_layer": alignment,
            # en <-> X retrieval (mean of both directions) per language, at each encoder's best
            # layer (the layer with the highest mean over the non-English languages)
            "retrieval_at_best_layer": retrieval_best,
        },
    }
    summary = _rounded(summary)
    run.save_summary(summary)
    return summary


def _rounded(value, digits: int = 6):
    if isinstance(value, float):
        return None if value != value else round(value, digits)  # NaN (undefined) -> null
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value
