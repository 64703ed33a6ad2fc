"""The run's summary (``summary.json``), the narrative generated from it, and ``report.html``.

Every sentence with a number is generated here from the run's tables; nothing is typed in by
hand. The HTML report stitches the executed stage notebooks together (summary first), hides code
and parameter cells, drops stderr (progress bars, warnings) and embeds every figure as PNG, so the
file stands alone: no script or style is fetched from elsewhere.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .files import read_json, read_table, write_json, write_text
from .languages import XNLI_LANGUAGES

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
    """Collect the run's headline numbers into ``summary.json`` (accuracies in [0, 1])."""
    from .alignment import headline_layer

    from .pipeline import read_record

    config, run_dir = run.config, Path(run.run_dir)
    tables = run_dir / "tables"
    acc = read_table(tables / "accuracy.csv")
    acc_mean = read_table(tables / "accuracy_mean.csv")
    transfer = read_table(tables / "transfer_summary.csv")
    align = read_table(tables / "alignment.csv")
    # the encoder's depth as the alignment stage measured it (alignment.layers may be a subset)
    recorded = (read_record(run_dir, "alignment") or {}).get("summary", {})
    n_layers = int(recorded.get("n_layers", align["layer"].max()))
    head = headline_layer(config.alignment.headline_layer, n_layers)
    resampling = {"resamples": config.stats.resamples, "seed": config.stats.seed}
    preds = read_table(tables / "predictions.parquet")
    ci = stats.accuracy_intervals(preds, **resampling)
    comparisons = stats.compare_conditions(preds, baseline="none", **resampling)
    run.save_table("accuracy_ci.csv", ci)
    run.save_table("comparisons.csv", comparisons)

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
    run.save_table("alignment_vs_transfer.csv", points)
    training = read_table(tables / "training_data.csv").set_index("dataset")["used"]
    inter = read_table(tables / "intermediate_results.csv")
    task_train = inter.groupby("condition", sort=False)["train_examples"].first()  # after the held-out split
    probe = read_table(tables / "probe_set.parquet") if (tables / "probe_set.parquet").exists() else None
    selection = read_table(tables / "selection.csv")
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
    run.save_json("summary.json", summary)
    return summary


def encoder_label(stage: str, condition: str) -> str:
    """``P``, ``I[task]`` or ``F[condition]``: how tables and the report name an encoder."""
    return "P" if stage == "pretrained" else f"{stage[0].upper()}[{condition}]"


def _rounded(value, digits: int = 6):
    if isinstance(value, float):
        return None if value != value else round(value, digits)  # NaN (undefined) -> null
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _near_chance(acc: float, chance: float, items: int) -> bool:
    """Within two binomial standard errors of chance for ``items`` test items per language."""
    return abs(acc - chance) <= 2 * np.sqrt(chance * (1 - chance) / max(items, 1))


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _interval(ci) -> str:
    return f"95% CI {100 * ci[0]:.1f} to {100 * ci[1]:.1f}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _significance(row: dict) -> str:
    """A comparison in words: the change in points, its interval and whether it is significant."""
    words = "significant" if row["significant"] else "not significant"
    return (f"{_pts(row['delta'])} points ({_interval(row['ci95'])} points; {_p(row['p'])}, Holm-adjusted "
            f"{_p(row['p_holm'])}: {words})")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def narrative(summary: dict, *, limits: str = "") -> str:
    """The report's results section, in Markdown, generated from ``summary``: every number in it
    comes from the run."""
    seeds = summary["seeds"]
    chance = summary.get("chance", 1 / 3)
    items = summary["items_per_language"]
    sizes = summary.get("sizes", {})
    conds = [c for c in summary["conditions"] if c != "none"]
    langs = summary["languages"]
    lines = ["### What was run", ""]
    tasks = (", ".join(f"`{c}` ({sizes.get('tasks', {}).get(c, '?')} examples)" for c in conds)
             if conds else "none (the baseline only)")
    lines.append(
        f"Profile `{summary['profile']}`; encoder `{summary['encoder']}`; intermediate tasks: {tasks}; "
        f"baseline `none` (no intermediate task). {_plural(len(seeds), 'seed')} ({', '.join(map(str, seeds))}), "
        f"shared by every condition. English MultiNLI fine-tuning on {sizes.get('mnli_train', '?')} examples, "
        f"the checkpoint selected on English XNLI dev only; zero-shot evaluation on XNLI "
        f"{summary['xnli_split']} ({summary['xnli_source']}), {items} items in each of "
        f"{len(langs)} languages. Accuracies are means over seeds with 95% bootstrap intervals "
        f"(resampling seeds and test items); chance is {_pct(chance)}."
        + (" With one seed the intervals cover only the sampling of test items, not the variation "
           "between training runs, which is often larger: read them as lower bounds on the uncertainty."
           if len(seeds) == 1 else
           f" With {len(seeds)} seeds, resampling seeds captures the variation between training runs "
           "only roughly: read the intervals as optimistic." if len(seeds) < 5 else ""))
    if summary["xnli_split"] == "dev":
        lines.append("English XNLI dev also selected the checkpoint, so the English accuracy here is "
                     "slightly optimistic; the other languages are unaffected.")
    acc, ci = summary["xnli_accuracy"], summary.get("xnli_accuracy_ci95", {})
    avg = summary.get("xnli_accuracy_avg", {})
    lines += ["", "### Zero-shot transfer", ""]
    for cond in summary["conditions"]:
        if cond not in acc:
            continue
        name = "The baseline" if cond == "none" else f"With `{cond}`"
        en_ci = ci.get(cond, {}).get("en")
        non_en = avg.get(cond, {}).get("avg_non_en", summary["transfer"][cond]["avg_non_en"])
        non_en_ci = ci.get(cond, {}).get("avg_non_en")
        at_chance = (non_en_ci[0] <= chance <= non_en_ci[1] if non_en_ci
                     else _near_chance(non_en, chance, items))
        sd = summary.get("xnli_accuracy_sd", {}).get(cond, {}).get("en")
        lines.append(
            f"- {name}: English {_pct(acc[cond]['en'])}"
            + (f" ({_interval(en_ci)}" + (f", sd {100 * sd:.1f} over seeds)" if sd == sd and sd is not None
                                          and len(seeds) > 1 else ")") if en_ci else "")
            + f"; the other {len(langs) - 1} languages {_pct(non_en)} on average"
            + (f" ({_interval(non_en_ci)})" if non_en_ci else "")
            + ("; on average not distinguishable from chance." if at_chance else
               f"; transfer gap {100 * summary['transfer'][cond]['transfer_gap']:.1f} points."))
    runs = [(cond, seed, a) for cond, by_seed in summary.get("selection_dev_en", {}).items()
            for seed, a in by_seed.items() if a is not None]
    if runs:
        best = max(a for _, _, a in runs)
        weak = [(c, sd, a) for c, sd, a in runs if a < best - 0.10]
        for cond, seed, a in weak:
            lines.append(
                f"- Run `{cond}` seed {seed} reached only {_pct(a)} on English dev against {_pct(best)} for "
                "the best run: it trained poorly (see the MNLI training curves), and it alone may drive "
                f"`{cond}`'s spread and its difference from the baseline.")
    comps = summary.get("comparisons", {})
    if comps:
        lines += ["", "### Against the baseline", ""]
        for cond, by_lang in comps.items():
            head = by_lang.get("avg_non_en") or by_lang["avg"]
            sig = [lang for lang, r in by_lang.items() if not lang.startswith("avg") and r["significant"]]
            lines.append(
                f"- `{cond}` minus `none`, mean over the non-English languages: {_significance(head)}. "
                f"Over all {len(langs)} languages: {_significance(by_lang['avg'])}. "
                + (f"Per language, significant in: {', '.join(sig)}." if sig else
                   "No single language changes significantly."))
        holm = (f"Holm correction runs across the {len(comps)} conditions, separately for each language "
                "and each average, not across languages" if len(comps) > 1 else
                "With one condition, Holm correction changes nothing; nothing corrects across languages")
        lines.append(f"  {holm}: with {len(langs)} languages, expect about one false positive in twenty "
                     "per-language tests. p-values come from the same paired bootstrap as the intervals.")
    al = summary["alignment"]
    enc = al["at_headline_layer"]
    p = enc.get("P", {})
    if p:
        layer = al["headline_layer"]
        lines += ["", "### Alignment", "", "Alignment numbers are descriptive: means over seeds and "
                  "languages, without intervals (the per-seed values are in `tables/alignment.csv`).", "", (
            f"Reported at layer {layer} of {al['n_layers']}, fixed before the run (layer 0 is the "
            f"embedding output; sentence vectors are the {al['pooling']}); means over the "
            f"non-English languages. The pretrained encoder P retrieves translations with "
            f"{_pct(p['retrieval'])} accuracy@1 ({_pct(p['retrieval_centered'])} after centering each "
            f"language); its linear CKA with English is {p['cka']:.2f}"
            + (f" and the language-identity probe reaches {_pct(p['language_id'])}" if "language_id" in p else "")
            + f". P's best retrieval layer is {al['best_layer_pretrained_retrieval']}, shown apart.")]
        for name, values in enc.items():
            if name.startswith("I["):
                lines.append(
                    f"- Intermediate training on `{name[2:-1]}` (I - P): retrieval "
                    f"{_pct(p['retrieval'])} → {_pct(values['retrieval'])}, centered "
                    f"{_pct(p['retrieval_centered'])} → {_pct(values['retrieval_centered'])}, CKA "
                    f"{p['cka']:.2f} → {values['cka']:.2f}.")
        f_base = enc.get("F[none]")
        if f_base:
            lines.append(
                f"- MNLI fine-tuning of P (F[none] - P): retrieval {_pct(p['retrieval'])} → "
                f"{_pct(f_base['retrieval'])}, CKA {p['cka']:.2f} → {f_base['cka']:.2f}.")
            for name, values in enc.items():
                if name.startswith("F[") and name != "F[none]":
                    lines.append(
                        f"- {name} against F[none]: retrieval {_pct(values['retrieval'])} against "
                        f"{_pct(f_base['retrieval'])}, CKA {values['cka']:.2f} against {f_base['cka']:.2f}.")
    rel = summary.get("alignment_vs_transfer")
    if rel is not None and conds:
        lines += ["", "### Does alignment change predict transfer change?", ""]
        if rel.get("spearman") is None or rel["ci95"][0] is None:
            lines.append(f"Not measurable here: the {rel['n']} (condition, language) points leave Spearman's "
                         "correlation or its interval undefined (a constant change on one side in most "
                         "resamples).")
        else:
            lo, hi = rel["ci95"]
            direction = "larger" if rel["spearman"] > 0 else "smaller"
            verdict = ("the interval includes zero: this run gives no evidence of a monotone relation "
                       "between the two" if lo <= 0 <= hi else
                       f"the interval excludes zero: a larger change in alignment went with a {direction} "
                       "change in accuracy")
            lines.append(
                f"Across {rel['n']} (condition, language) points, the change in {rel['metric']} at layer "
                f"{rel['layer']} (F_t - F[none]) and the change in XNLI accuracy have Spearman ρ = "
                f"{rel['spearman']:.2f} (95% bootstrap CI {lo:.2f} to {hi:.2f}); {verdict}. The points share "
                "the baseline and the seeds, and languages differ in script and resources, so this is an "
                "association, not a causal estimate.")
    refs = summary.get("references") or []
    if refs:
        lines += ["", "### Published numbers for this encoder", ""]
        base = acc.get("none", {})
        ours_avg = avg.get("none", {}).get("avg")
        for ref in refs:
            published = ", ".join(part for part in (
                f"English {ref['en']:.1f}%" if ref.get("en") is not None else "",
                f"average over 15 {ref['avg_15']:.1f}%" if ref.get("avg_15") is not None else "") if part)
            lines.append(f"- {ref['model']} ({ref['source']}): {published}.")
        if base and ours_avg is not None:
            lines.append(f"- This run's baseline: English {_pct(base['en'])}, average over "
                         f"{len(langs)} {_pct(ours_avg)} (XNLI {summary['xnli_split']}).")
    if limits:
        lines += ["", limits]
    return "\n".join(lines)


# ---- HTML -----------------------------------------------------------------------------------
REPORT_ORDER = ("05_report.ipynb", "01_data_inspection.ipynb", "02_intermediate_training.ipynb",
                "03_xnli_transfer.ipynb", "04_alignment.ipynb")
HIDDEN_TAGS = {"parameters", "injected-parameters", "hide-in-report"}


def _report_notebook(run_dir: Path):
    import nbformat

    merged = None
    for name in REPORT_ORDER:
        path = run_dir / "notebooks" / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the study before building the report")
        nb = nbformat.read(path, as_version=4)
        if merged is None:
            merged = nbformat.v4.new_notebook(metadata=nb.metadata)
        for cell in nb.cells:
            if HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
                continue
            if cell.cell_type == "code":
                cell.outputs = [_with_alt_text(o) for o in cell.outputs
                                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
                if not cell.outputs:
                    continue
            merged.cells.append(cell)
    return merged


def _with_alt_text(output):
    """A PNG output as an ``<img>`` that keeps its alternative text (the lab template drops it)."""
    import nbformat

    data = output.get("data", {})
    if "image/png" not in data:
        return output
    alt = output.get("metadata", {}).get("image/png", {}).get("alt") or "figure"
    png = data["image/png"].replace("\n", "")
    return nbformat.v4.new_output(
        "display_data",
        data={"text/html": f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt, quote=True)}">'},
    )


def build_report(run_dir: str | Path) -> Path:
    """Render ``<run>/report.html`` from the executed notebooks; return its path."""
    from nbconvert import HTMLExporter

    run_dir = Path(run_dir)
    nb = _report_notebook(run_dir)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    body = _self_contained(body)
    try:
        title = f"xnli-study report: {read_json(run_dir / 'summary.json')['profile']}"
    except (OSError, ValueError, KeyError):
        title = "xnli-study report"
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", body, count=1, flags=re.S)
    out = write_text(run_dir / "report.html", body)
    record = run_dir / "stages" / "report.json"
    if record.exists():  # the HTML is an output of the report stage
        data = read_json(record)
        if "report.html" not in data["outputs"]:
            data["outputs"].append("report.html")
            write_json(record, data)
    return out


def _self_contained(body: str) -> str:
    """Remove every reference to a resource outside the file (scripts, styles from CDNs)."""
    body = re.sub(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", "", body)
    body = re.sub(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", "", body)
    # MathJax configuration blocks are useless without the MathJax script
    body = re.sub(r"<script type=\"text/x-mathjax-config\">.*?</script>", "", body, flags=re.S)
    return body


# ---- per-stage sentences for the notebooks ----------------------------------------------------
def describe_intermediate(results: pd.DataFrame) -> str:
    """One sentence per intermediate task: held-out accuracy against chance, over seeds."""
    if results.empty:
        return "No intermediate task in this profile: only the baseline (`none`, I = P) runs."
    lines = []
    for cond, g in results.groupby("condition", sort=False):
        acc = g["heldout_accuracy"]
        metric = g["heldout_metric"].iloc[0] if "heldout_metric" in g else "accuracy"
        chance = g["chance"].iloc[0]
        lines.append(
            f"- `{cond}`: held-out {metric} {acc.mean():.3f}"
            + (f" (sd {acc.std(ddof=1):.3f} over {len(g)} seeds)" if len(g) > 1 else "")
            + (f", chance {chance:.3f}" if chance == chance else "")
            + f"; {int(g['train_examples'].iloc[0])} training examples."
        )
    return "\n".join(lines)


def describe_transfer(transfer: pd.DataFrame) -> str:
    """Mean over seeds of English accuracy, the averages and the transfer gap, per condition."""
    mean = transfer.groupby("condition", sort=False)[["en", "avg_all", "avg_non_en", "transfer_gap"]].mean()
    lines = []
    for cond, row in mean.iterrows():
        lines.append(
            f"- `{cond}`: English {_pct(row['en'])}, mean over all languages {_pct(row['avg_all'])}, "
            f"over the non-English languages {_pct(row['avg_non_en'])}; transfer gap "
            f"{100 * row['transfer_gap']:.1f} points."
        )
    return "\n".join(lines)


def describe_comparisons(comparisons: pd.DataFrame) -> str:
    """One line per condition: its change against the baseline on the non-English average, in words."""
    if comparisons.empty:
        return "Only the baseline ran: there is nothing to compare."
    lines = []
    for cond, g in comparisons.groupby("condition", sort=False):
        rows = g.set_index("lang")
        key = "avg_non_en" if "avg_non_en" in rows.index else "avg"
        r = rows.loc[key]
        row = {"delta": r["delta"], "ci95": [r["ci_low"], r["ci_high"]], "p": r["p"], "p_holm": r["p_holm"],
               "significant": bool(r["significant"])}
        sig = [lang for lang, x in rows.iterrows() if not str(lang).startswith("avg") and x["significant"]]
        lines.append(f"- `{cond}` - `none` ({'non-English' if key == 'avg_non_en' else 'all-language'} "
                     f"average): {_significance(row)}; significant languages (Holm across conditions, "
                     f"not across languages): {', '.join(sig) or 'none'}.")
    return "\n".join(lines)


def _wide(frame: pd.DataFrame, cell) -> pd.DataFrame:
    """Conditions as rows, languages (then the averages) as columns, each cell ``cell(row)``."""
    order = [lang for lang in XNLI_LANGUAGES if lang in set(frame["lang"])]
    order += [a for a in ("avg", "avg_non_en") if a in set(frame["lang"])]
    wide = frame.assign(cell=frame.apply(cell, axis=1)).pivot(index="condition", columns="lang", values="cell")
    return wide.reindex(index=list(dict.fromkeys(frame["condition"])), columns=order)


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Accuracy in % per condition and language as ``mean (low-high)``, the 95% interval."""
    return _wide(intervals, lambda r: f"{100 * r['mean']:.1f} ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})")


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Change against the baseline in points per condition and language as
    ``delta [low, high]``, with ``*`` where significant after Holm."""
    return _wide(comparisons, lambda r: f"{100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, "
                                        f"{100 * r['ci_high']:+.1f}]{'*' if r['significant'] else ''}")


def headline_table(table: pd.DataFrame, *, layer: int) -> pd.DataFrame:
    """Metrics at the fixed headline layer, and at each metric's best layer (shown apart), averaged
    over the non-English languages and seeds, per stage and condition."""
    data = table[table["lang"] != "en"]
    per_layer = data.groupby(["stage", "condition", "metric", "layer"], sort=False)["value"].mean().reset_index()
    rows = []
    for (stage, cond, metric), g in per_layer.groupby(["stage", "condition", "metric"], sort=False):
        at = g[g["layer"] == layer]["value"]
        lower_is_better = metric == "language_id"
        best = g.loc[g["value"].idxmin() if lower_is_better else g["value"].idxmax()]
        rows.append({"stage": stage, "condition": cond, "metric": metric,
                     f"layer {layer} (headline)": float(at.iloc[0]) if len(at) else np.nan,
                     "best layer": int(best["layer"]), "value at best layer": float(best["value"])})
    return pd.DataFrame(rows)
