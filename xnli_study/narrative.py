"""The report's words: sentences and compact tables generated from the run's numbers.

:func:`narrative` turns ``summary.json`` (:mod:`xnli_study.summary`) into the results section;
the ``describe_*`` functions give each stage notebook its sentences; the ``*_table`` functions
format tables for reading. Every number in them comes from the run; nothing is typed in by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .languages import XNLI_LANGUAGES
from .runfolder import table_name


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


def _seeds_caveat(n_seeds: int) -> str:
    """What the intervals cover, given the number of seeds (a sentence, with a leading space)."""
    if n_seeds == 1:
        return (" With one seed the intervals cover only the sampling of test items, not the variation "
                "between training runs, which is often larger: read them as lower bounds on the uncertainty.")
    if n_seeds < 5:
        return (f" With {n_seeds} seeds, resampling seeds captures the variation between training runs "
                "only roughly: read the intervals as optimistic.")
    return ""


def _spread(ci, sd, n_seeds: int) -> str:
    """`` (95% CI a to b, sd s over seeds)``: the interval, and the sd when several seeds define it."""
    if not ci:
        return ""
    with_sd = sd is not None and sd == sd and n_seeds > 1
    return f" ({_interval(ci)}, sd {100 * sd:.1f} over seeds)" if with_sd else f" ({_interval(ci)})"


def _in_parentheses(ci) -> str:
    return f" ({_interval(ci)})" if ci else ""


def _transfer_verdict(at_chance: bool, gap: float) -> str:
    if at_chance:
        return "on average not distinguishable from chance."
    return f"transfer gap {100 * gap:.1f} points."


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
        f"(resampling seeds and test items); chance is {_pct(chance)}." + _seeds_caveat(len(seeds)))
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
            f"- {name}: English {_pct(acc[cond]['en'])}{_spread(en_ci, sd, len(seeds))}; the other "
            f"{len(langs) - 1} languages {_pct(non_en)} on average{_in_parentheses(non_en_ci)}; "
            + _transfer_verdict(at_chance, summary["transfer"][cond]["transfer_gap"]))
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
                  f"languages, without intervals (the per-seed values are in `{table_name('alignment')}`).", "", (
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


# ---- per-stage sentences and compact tables for the notebooks -----------------------------------
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


def where_the_columns_are() -> str:
    """The sentence under the compact comparison table: what its cells show, where the rest is."""
    return (f"Points, with the 95% interval; `*` significant after Holm correction. Every column (mean, "
            f"sd, intervals, p, p_holm) is in `{table_name('accuracy_ci')}` and `{table_name('comparisons')}`.")


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
