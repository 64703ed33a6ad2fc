"""The report's words: sentences and compact tables generated from the run's numbers.

:func:`narrative` turns ``summary.json`` (:mod:`xnli_study.summary`) into the results section;
the ``describe_*`` functions give each stage notebook its sentences; the ``*_table`` functions
format tables for reading. Every number in them comes from the run; nothing is typed in by hand.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown

from .languages import XNLI_LANGUAGES, encoder_label
from .runfolder import table_name
from .stats import MIN_SEEDS, is_claimed


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
    """A comparison in words: the change in points, its interval and, where the seeds allow a test
    (``significant`` not None), whether it is significant after Holm."""
    if row["significant"] is None:
        return f"{_pts(row['delta'])} points ({_interval(row['ci95'])} points, over test items only)"
    words = "significant" if row["significant"] else "not significant"
    return (f"{_pts(row['delta'])} points ({_interval(row['ci95'])} points; {_p(row['p'])}, Holm-adjusted "
            f"{_p(row['p_holm'])}: {words})")


def _resampled(n_seeds: int) -> str:
    return "resampling seeds and test items" if n_seeds >= MIN_SEEDS else "resampling test items"


def _seeds_limit(seeds: int) -> str:
    if seeds == 1:
        return "1 seed: no spread over seeds, and no significance test."
    if seeds < MIN_SEEDS:
        return f"{seeds} seeds: too few for a significance test."
    return f"{seeds} seeds: the intervals sample run-to-run variation."


def _no_claim(n_seeds: int) -> str:
    """Why a run with too few seeds makes no significance claim."""
    return (f"With {_plural(n_seeds, 'seed')}, the intervals cover the sampling of test items only, not the "
            f"variation between training runs: no difference is called significant. A significance test "
            f"needs at least {MIN_SEEDS} seeds (set `seeds: [0, 1, 2]` or more).")


def _chance_note(chance: float | None) -> str:
    return f"; chance {_pct(chance)}" if chance else ""


def _cka(values: dict) -> str:
    """``debiased linear CKA 0.12 (biased 0.70)``: the headline CKA with the biased one beside it."""
    if values.get("cka_debiased") is None:
        return f"linear CKA {values['cka']:.2f} (biased estimate)"
    return f"debiased linear CKA is {values['cka_debiased']:.2f} (biased {values['cka']:.2f})"


def _cka_change(before: dict, after: dict, *, word: str = "→") -> str:
    if before.get("cka_debiased") is None or after.get("cka_debiased") is None:
        return f"CKA (biased) {before['cka']:.2f} {word} {after['cka']:.2f}"
    return (f"debiased CKA {before['cka_debiased']:.2f} {word} {after['cka_debiased']:.2f} "
            f"(biased {before['cka']:.2f} {word} {after['cka']:.2f})")


def _language_id(values: dict, chance: float | None) -> str:
    """The language-identity probes of an encoder, with chance beside them (lower = more neutral)."""
    if "language_id" not in values:
        return ""
    text = f"; the language-identity probe reaches {_pct(values['language_id'])}"
    if values.get("language_id_low_data") is not None:
        text += (f", and trained on only 16 sentences per language {_pct(values['language_id_low_data'])}")
    if chance:
        text += f" (chance {_pct(chance)}; lower is more language-neutral)"
    return text


def _per_language_claims(by_lang: dict) -> str:
    sig = [lang for lang, r in by_lang.items() if not lang.startswith("avg") and is_claimed(r["significant"])]
    return f"Per language, significant in: {', '.join(sig)}." if sig else "No single language changes significantly."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seeds_caveat(n_seeds: int) -> str:
    """What the intervals cover, given the number of seeds (a sentence, with a leading space)."""
    if n_seeds == 1:
        return (" With one seed the intervals cover test items only, not the variation between training "
                "runs, which is often larger: read them as lower bounds on the uncertainty.")
    if n_seeds < MIN_SEEDS:
        return (f" With {n_seeds} seeds the intervals rest on test items only ({n_seeds} runs cannot "
                "estimate the variation between training runs): read them as lower bounds on the uncertainty.")
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


#: a language where one label takes more than this share of the predictions is flagged
ONE_LABEL_SHARE = 0.70


def _task_size(size) -> str:
    """``trained on 720 of 800 examples, 80 held out for the task's own score``."""
    if not isinstance(size, dict):
        return f"{size if size is not None else '?'} examples"
    return (f"trained on {size['trained']:,} of {size['available']:,} examples; {size['held_out']:,} "
            "held out for the task's own score")


def _mnli_size(sizes: dict) -> str:
    mnli = sizes.get("mnli")
    if not mnli:
        return f"on {sizes.get('mnli_train', '?')} examples"
    return f"on {mnli['trained']:,} of {mnli['available']:,} examples"


def _setting_note(setting: str | None) -> str:
    return "; translate-train: it trains on machine-translated text of the evaluation languages" \
        if setting == "translate-train" else ""


def _alignment_note(fmt: str | None) -> str:
    """How an alignment task differs from the others: what it trains on, and what it never sees."""
    if fmt is None:
        return ""
    data = "parallel sentences" if fmt == "parallel" else "bilingual lexicon word pairs"
    return (f"; an alignment task: contrastive training on {data} (English, X) of the evaluation "
            "languages, with no NLI label in any language")


def _evaluation_setting(setting: dict, aligning: dict | None = None) -> str:
    """Zero-shot, except for translate-train conditions, which are named; alignment tasks are named
    for the unlabelled text of the evaluation languages they see."""
    translated = [c for c, s in setting.items() if s == "translate-train"]
    if aligning:
        names = ", ".join(f"`{c}`" for c in aligning)
        seen = (f"; {names} also trains on unlabelled text of the evaluation languages (translation "
                "pairs), so its transfer is zero-shot for NLI labels only")
    else:
        seen = ""
    if not translated:
        return "zero-shot (no condition sees a non-English NLI label)" + seen
    names = ", ".join(f"`{c}`" for c in translated)
    return (f"zero-shot for every condition but {names}, which is translate-train (not zero-shot: it "
            "trains on machine-translated text of the evaluation languages)" + seen)


def _stalled_tasks(intermediate: dict) -> list[str]:
    """A line for each intermediate task whose held-out score is not above chance (within two
    binomial standard errors of its held-out size)."""
    lines = []
    for task, r in intermediate.items():
        if r.get("score") is None or r.get("chance") is None:
            continue
        if r.get("pretrained") is not None:  # an alignment task: P's own retrieval is the bar
            if r["score"] <= r["pretrained"]:
                lines.append(f"- The alignment task `{task}` did not raise its held-out {r['metric']}: "
                             f"{r['score']:.3f} against P's {r['pretrained']:.3f} on the same pairs.")
            continue
        if r["score"] <= r["chance"] + 2 * np.sqrt(r["chance"] * (1 - r["chance"]) / max(r["held_out"], 1)):
            lines.append(f"- The intermediate task `{task}` did not learn: its held-out {r['metric']} is "
                         f"{r['score']:.3f} against chance {r['chance']:.3f} ({r['held_out']} held-out examples). "
                         f"Whatever `{task}` changes downstream comes from training that failed on its own task.")
    return lines


def _one_label_languages(shares: dict) -> list[str]:
    """Languages where one label takes more than ``ONE_LABEL_SHARE`` of a condition's predictions."""
    lines = []
    for cond, by_lang in shares.get("predicted", {}).items():
        flagged = []
        for lang, dist in by_lang.items():
            label, share = max(dist.items(), key=lambda kv: kv[1])
            if share > ONE_LABEL_SHARE:
                gold = shares.get("gold", {}).get(lang, {}).get(label)
                flagged.append(f"{lang} ({_pct(share)} \"{label}\"" + (f", gold {_pct(gold)})" if gold is not None else ")"))
        if flagged:
            name = "The baseline" if cond == "none" else f"`{cond}`"
            lines.append(f"- {name} predicts mostly one label in: {', '.join(flagged)}: its accuracy there "
                         "comes from a default answer, not from reading the pair.")
    return lines


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
    setting = summary.get("setting", {})
    aligning = summary.get("alignment_tasks", {})
    tasks = ", ".join(f"`{c}` ({_task_size(sizes.get('tasks', {}).get(c))}{_setting_note(setting.get(c))}"
                      f"{_alignment_note(aligning.get(c))})"
                      for c in conds) if conds else "none (the baseline only)"
    lines.append(
        f"Profile {code(summary['profile'])}; encoder {code(summary['encoder'])}; intermediate tasks: {tasks}; "
        f"baseline `none` (no intermediate task). {_plural(len(seeds), 'seed')} ({', '.join(map(str, seeds))}), "
        f"shared by every condition. English MultiNLI fine-tuning {_mnli_size(sizes)}, "
        f"the checkpoint selected on English XNLI dev only; evaluation on XNLI "
        f"{summary['xnli_split']} ({summary['xnli_source']}), {items} items in each of "
        f"{len(langs)} languages, {_evaluation_setting(setting, aligning)}. Accuracies are means over seeds with 95% "
        f"bootstrap intervals ({_resampled(len(seeds))}); chance is {_pct(chance)}." + _seeds_caveat(len(seeds)))
    if summary["xnli_split"] == "dev":
        lines.append("English XNLI dev also selected the checkpoint, and dev is 15-way parallel: selection "
                     "on English dev favours the translations of the same items, so every language's "
                     "accuracy here is optimistic, English most.")
    lines += _stalled_tasks(summary.get("intermediate", {}))
    acc, ci = summary["xnli_accuracy"], summary.get("xnli_accuracy_ci95", {})
    avg = summary.get("xnli_accuracy_avg", {})
    lines += ["", "### Transfer to the other languages", ""]
    for cond in summary["conditions"]:
        if cond not in acc:
            continue
        name = "The baseline" if cond == "none" else f"With `{cond}`{_setting_note(setting.get(cond))}"
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
    lines += _one_label_languages(summary.get("label_shares", {}))
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
        claims = len(seeds) >= MIN_SEEDS
        for cond, by_lang in comps.items():
            head = by_lang.get("avg_non_en") or by_lang["avg"]
            lines.append(
                f"- `{cond}` minus `none`, mean over the non-English languages: {_significance(head)}. "
                f"Over all {len(langs)} languages: {_significance(by_lang['avg'])}."
                + (f" {_per_language_claims(by_lang)}" if claims else ""))
        if claims:
            family = summary.get("stats", {}).get("p_values", "")
            lines.append(f"  p-values come from the same paired bootstrap as the intervals; {family}.")
        else:
            lines.append(f"  {_no_claim(len(seeds))}")
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
            f"language{_chance_note(al.get('retrieval_chance'))}); its {_cka(p)} with English"
            + _language_id(p, al.get("language_id_chance"))
            + f". P's best retrieval layer is {al['best_layer_pretrained_retrieval']}, shown apart. CKA is "
            "reported debiased (the unbiased HSIC estimator): the biased estimate of unrelated vectors is far "
            "from 0 when there are few sentences against the width of the vectors, and it moves with the "
            "spectrum, which fine-tuning changes.")]
        for name, values in enc.items():
            if name.startswith("I["):
                lines.append(
                    f"- Intermediate training on `{name[2:-1]}` (I - P): retrieval "
                    f"{_pct(p['retrieval'])} → {_pct(values['retrieval'])}, centered "
                    f"{_pct(p['retrieval_centered'])} → {_pct(values['retrieval_centered'])}, "
                    f"{_cka_change(p, values)}.")
        f_base = enc.get("F[none]")
        if f_base:
            lines.append(
                f"- MNLI fine-tuning of P (F[none] - P): retrieval {_pct(p['retrieval'])} → "
                f"{_pct(f_base['retrieval'])}, {_cka_change(p, f_base)}.")
            for name, values in enc.items():
                if name.startswith("F[") and name != "F[none]":
                    lines.append(
                        f"- {name} against F[none]: retrieval {_pct(values['retrieval'])} against "
                        f"{_pct(f_base['retrieval'])}, {_cka_change(f_base, values, word='against')}.")
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
                f"{rel['spearman']:.2f} (95% bootstrap CI {lo:.2f} to {hi:.2f}"
                f"{'' if len(seeds) >= MIN_SEEDS else ', over test items only'}); {verdict}. The points share "
                "the baseline and the seeds, and languages differ in script and resources, so this is an "
                "association, not a causal estimate.")
    lines += positive_control(summary)
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
    lines += ["", "**Limits of this profile.** " + " ".join(generated_limits(summary))
              + (f" {as_text(limits)}" if limits else "")]
    return "\n".join(lines)


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def positive_control(summary: dict) -> list[str]:
    """The synthetic world's planted answer and whether this run detected it (sample data only)."""
    planted = summary.get("planted")
    if not planted:
        return []
    groups, gradient = planted["anchor_groups"], planted["gradient"]
    described = "; ".join(f"{name} ({', '.join(g['languages'])}: anchor share {g['anchor_share']:.2f}, "
                          f"baseline accuracy {_pct(g['baseline_accuracy'])})" for name, g in groups.items())
    lines = ["", "### Positive control", "",
             "The data are a synthetic world with a planted answer: each pseudo-language writes a share of "
             "its words as the English word (its anchors), P learnt them by masked language modelling "
             "without parallel text, so transfer should be graded by anchor share; and `parallel_align` "
             "should raise both alignment and non-English accuracy (the effect is small: a few points). "
             f"Groups: {described}."]
    found = []
    if gradient["high_above_low"] is not None:
        graded = gradient["high_above_low"] and gradient["high_anchor_at_least_min"]
        found.append(("graded transfer was detected: " if graded else "graded transfer was NOT detected: ")
                     + f"the high-anchor group is {'above' if gradient['high_above_low'] else 'not above'} the "
                       "low-anchor group, and its languages are "
                     + ("all" if gradient["high_anchor_at_least_min"] else "not all")
                     + f" at {_pct(gradient['high_anchor_min'])} or more")
    n_seeds = len(summary["seeds"])
    for task, r in planted["alignment_tasks"].items():
        retrieval = ("" if r["retrieval"] is None else
                     f"retrieval at the headline layer {_pct(r['retrieval_none'])} (F[none]) → {_pct(r['retrieval'])}"
                     f"{'' if r['retrieval_raised'] else ', not raised'}; ")
        verdict = "raised transfer" if r["detected"] else "did NOT clearly raise transfer"
        if r["detected"] and n_seeds < MIN_SEEDS:
            verdict += " on these test items"
        found.append(f"`{task}` {verdict}: {retrieval}"
                     f"non-English mean accuracy {_pts(r['accuracy_delta'])} points ({_interval(r['accuracy_ci95'])})")
    if found:
        lines.append("In this run, " + "; ".join(found) + "."
                     + ("" if n_seeds >= MIN_SEEDS else
                        f" With {_plural(n_seeds, 'seed')} the interval covers test items only: evidence on "
                        "these items, not a significance claim."))
    return lines


def as_text(value: str) -> str:
    r"""``value`` made safe to put in Markdown that is rendered to HTML: Markdown's punctuation is
    escaped and ``& < >`` become HTML entities, so it shows exactly as typed and nothing in it runs
    (a params file's ``description`` or ``limits`` is shared text, not markup).

    >>> print(as_text('<img src=x onerror="alert(1)"> *a*'))
    &lt;img src=x onerror="alert\(1\)"&gt; \*a\*
    """
    return html.escape(_MARKDOWN_SPECIALS.sub(r"\\\1", str(value)), quote=False)


def code(value) -> str:
    """``value`` as inline code that shows exactly as typed: an HTML ``<code>`` element with the
    text escaped (a Markdown code span cannot hold a backtick, and escapes show inside it)."""
    return f"<code>{html.escape(str(value), quote=False)}</code>"


def no_published_numbers(encoder: str) -> str:
    return (f"No published XNLI numbers for {code(encoder)}; STUDY.md lists those for mBERT, XLM-R base and "
            "XLM-R large.")


def generated_limits(summary: dict) -> list[str]:
    """The limits of a run, in sentences, from what the profile is made of (``summary['design']``):
    the encoder, the data, the splits, the seeds, the sizes."""
    design = summary.get("design")
    if not design:
        return []
    out = []
    kind = design["encoder_kind"]
    if kind == "tiny" and design.get("random_init"):
        out.append("The encoder is a small BERT built in-process from random weights: before this run it "
                   "has seen no language at all.")
    elif kind == "tiny":
        out.append("The encoder is a small BERT pretrained in-process by masked language modelling on the "
                   "synthetic world's monolingual corpus only (no parallel text): what it shares across "
                   "languages comes from the anchors, the words the pseudo-languages share with English.")
    elif kind == "package":
        out.append(f"The encoder {code(design['encoder'])} is a pretrained model shipped in a Python package.")
    elif kind == "folder":
        out.append("The encoder is a local model folder: its pretraining is whatever made that folder.")
    else:
        out.append(f"The encoder {code(design['encoder'])} comes from the Hugging Face hub.")
    if design["synthetic"]:
        out.append("XNLI, MultiNLI and the intermediate tasks come from the project's synthetic sample: the "
                   "non-English text is pseudo-language keyed by the XNLI codes, not real language, so its "
                   "numbers show what the pipeline measures; they are not findings about real languages.")
    else:
        labels = (f", labelled through {code(design['labels_from'])}" if design.get("labels_from") else "")
        tasks = ", ".join(f"`{t}` from {src}" for t, src in design.get("task_sources", {}).items())
        out.append(f"XNLI comes from {design['xnli_source']} files{labels}; MultiNLI from "
                   f"{design['mnli_source']} data" + (f"; {tasks}" if tasks else "") + ".")
    if design["eval_split"] == "dev":
        out.append("Evaluation is on XNLI dev, the split that also selects the checkpoint.")
    out.append(f"{summary['items_per_language']} test items per language"
               + (f" (a seeded sample of {design['max_items']})" if design.get("max_items") else "")
               + f": one standard error of a language's accuracy is about "
               f"{100 * np.sqrt(0.25 / max(summary['items_per_language'], 1)):.1f} points.")
    out.append(_seeds_limit(design["seeds"]))
    sub = design.get("subsampled", {})
    if sub:
        out.append("Subsampled: " + ", ".join(f"{'MultiNLI' if k == 'mnli' else f'`{k}`'} to {v:,} examples"
                                              for k, v in sub.items()) + ".")
    return out


# ---- per-stage sentences and compact tables for the notebooks -----------------------------------
def describe_intermediate(results: pd.DataFrame) -> str:
    """One sentence per intermediate task: its held-out score against chance, over seeds (for
    extractive QA: SQuAD exact match and F1 per question, which have no chance level)."""
    if results.empty:
        return "No intermediate task in this profile: only the baseline (`none`, I = P) runs."
    lines = []
    for cond, g in results.groupby("condition", sort=False):
        score, metric, chance = g["heldout_accuracy"], g["heldout_metric"].iloc[0], g["chance"].iloc[0]
        f1 = g["heldout_f1"] if "heldout_f1" in g else pd.Series(dtype=float)
        text = f"- `{cond}`: held-out {metric} {score.mean():.3f}{_over_seeds(score)}"
        before = g["heldout_pretrained"] if "heldout_pretrained" in g else pd.Series(dtype=float)
        if before.notna().any():
            text += f" (P, before training: {before.mean():.3f}; layer {int(g['layer'].iloc[0])})"
        if f1.notna().any():
            text += f", F1 {f1.mean():.3f}"
        if chance == chance:
            text += f", chance {chance:.3f}"
        lines.append(text + f"; trained on {int(g['train_examples'].iloc[0]):,} examples, "
                            f"{int(g['heldout_examples'].iloc[0]):,} held out.")
    return "\n".join(lines)


def _over_seeds(values: pd.Series) -> str:
    return f" (sd {values.std(ddof=1):.3f} over {len(values)} seeds)" if len(values) > 1 else ""


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
        claim = None if pd.isna(r["significant"]) else bool(r["significant"])
        row = {"delta": r["delta"], "ci95": [r["ci_low"], r["ci_high"]], "p": r["p"], "p_holm": r["p_holm"],
               "significant": claim}
        text = (f"- `{cond}` - `none` ({'non-English' if key == 'avg_non_en' else 'all-language'} "
                f"average): {_significance(row)}")
        if claim is None:
            text += f"; no significance claim with {int(r['seeds'])} seed(s), a test needs {MIN_SEEDS}."
        else:
            sig = [lang for lang, x in rows.iterrows() if not str(lang).startswith("avg") and is_claimed(x["significant"])]
            text += f"; significant languages (Holm-corrected): {', '.join(sig) or 'none'}."
        lines.append(text)
    return "\n".join(lines)


def interval_caption(summary: dict) -> str:
    """What the accuracy figure and its table show, and what their intervals cover."""
    seeds = len(summary["seeds"])
    cover = ("seeds and test items resampled" if seeds >= MIN_SEEDS else
             f"test items only: {_plural(seeds, 'seed')} cannot sample run-to-run variation")
    return (f"Bars: means over seeds; whiskers: the 95% bootstrap interval ({cover}); dots: single seeds; "
            f"dashed line: chance ({_pct(summary.get('chance', 1 / 3))}). `avg` is the mean over all "
            "languages, `avg_non_en` over all but English. The table gives each mean with its interval, in %.")


def accuracy_table(accuracy_mean: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over seeds in %, conditions as rows and languages as columns."""
    wide = (100 * accuracy_mean.pivot(index="condition", columns="lang", values="mean")).round(1)
    order = [lang for lang in XNLI_LANGUAGES if lang in wide.columns]
    wide = wide.reindex(index=list(dict.fromkeys(accuracy_mean["condition"])), columns=order)
    return wide.rename_axis(columns=None).reset_index()


def where_the_columns_are() -> str:
    """The sentence under the compact comparison table: what its cells show, where the rest is."""
    return (f"Points, with the 95% interval; `*` significant after Holm correction (only with "
            f"{MIN_SEEDS} or more seeds). Every column (mean, "
            f"sd, intervals, p, p_holm) is in `{table_name('accuracy_ci')}` and `{table_name('comparisons')}`.")


def by_language(frame: pd.DataFrame, cell) -> pd.DataFrame:
    """Conditions as rows, languages (then the averages) as columns, each cell ``cell(row)``."""
    order = [lang for lang in XNLI_LANGUAGES if lang in set(frame["lang"])]
    order += [a for a in ("avg", "avg_non_en") if a in set(frame["lang"])]
    wide = frame.assign(cell=frame.apply(cell, axis=1)).pivot(index="condition", columns="lang", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(frame["condition"])), columns=order)
    return wide.rename_axis(columns=None).reset_index()


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Accuracy in % per condition and language as ``mean (low-high)``, the 95% interval."""
    return by_language(intervals, lambda r: f"{100 * r['mean']:.1f} ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})")


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Change against the baseline in points per condition and language as
    ``delta [low, high]``, with ``*`` where significant after Holm."""
    return by_language(comparisons, lambda r: f"{100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, "
                                        f"{100 * r['ci_high']:+.1f}]{'*' if is_claimed(r['significant']) else ''}")


#: the alignment metrics of the compact headline table (the rest are in the alignment table)
HEADLINE_METRICS = ("retrieval", "retrieval_centered", "cka_debiased", "cka", "cosine_margin", "language_id",
                    "language_id_low_data")
#: tables longer than this go to tables/ with a sentence, not into the report
MAX_ROWS = 20


def headline_table(table: pd.DataFrame, *, layer: int) -> pd.DataFrame:
    """One row per encoder (P, I[t], F[t]): each metric at the headline layer, averaged over the
    non-English languages and seeds, then the best layer of each metric shown apart (as
    ``best layer`` and ``value at best layer`` columns per metric would make the table unreadable,
    the best layers come in :func:`best_layer_table`)."""
    per_layer = _per_layer(table)
    at = per_layer[per_layer["layer"] == layer]
    wide = at.pivot_table(index=["stage", "condition"], columns="metric", values="value", sort=False)
    return _encoder_rows(wide)


def best_layer_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder: each metric's best layer (lowest for the language-identity probes,
    highest otherwise), as ``layer: value``."""
    per_layer = _per_layer(table)
    cells = {}
    for (stage, cond, metric), g in per_layer.groupby(["stage", "condition", "metric"], sort=False):
        best = g.loc[g["value"].idxmin() if metric.startswith("language_id") else g["value"].idxmax()]
        cells.setdefault((stage, cond), {})[metric] = f"{int(best['layer'])}: {best['value']:.3f}"
    wide = pd.DataFrame.from_dict(cells, orient="index")
    wide.index = pd.MultiIndex.from_tuples(wide.index, names=["stage", "condition"])
    return _encoder_rows(wide)


def _per_layer(table: pd.DataFrame) -> pd.DataFrame:
    data = table[(table["lang"] != "en") & table["metric"].isin(HEADLINE_METRICS)]
    return data.groupby(["stage", "condition", "metric", "layer"], sort=False)["value"].mean().reset_index()


def _encoder_rows(wide: pd.DataFrame) -> pd.DataFrame:
    wide = wide.reindex(columns=[m for m in HEADLINE_METRICS if m in wide.columns])
    wide.insert(0, "encoder", [encoder_label(stage, cond) for stage, cond in wide.index])
    return wide.reset_index(drop=True)


def recipe_table(training, *, devices: int = 1) -> pd.DataFrame:
    """The training recipe of both stages, with the effective batch each optimizer step takes
    (batch per device x gradient accumulation x devices)."""
    rows = []
    for stage, settings in (("intermediate", training.intermediate), ("MNLI", training.mnli)):
        rows.append({
            "stage": stage, "epochs": settings.epochs, "learning rate": f"{settings.learning_rate:g}",
            "batch per device": settings.batch_size,
            "accumulation": settings.gradient_accumulation_steps, "devices": devices,
            "effective batch": settings.effective_batch(devices), "max length": settings.max_length,
            "warmup": settings.warmup_ratio, "precision": settings.precision,
        })
    return pd.DataFrame(rows).set_index("stage")


def profile_line(profile: str, description: str, run_dir) -> str:
    """The first line of the data notebook: the profile, its description (as text) and the run folder."""
    return f"Profile **{as_text(profile)}**: {as_text(description)}  \nRun folder: {code(run_dir)}"


def show_table(frame: pd.DataFrame, *, saved_as: str | None = None, digits: int = 3):
    """A table for the report: no index column, numbers rounded, text escaped; a table longer than
    ``MAX_ROWS`` is not shown but pointed at (``saved_as``: its key in the run folder's tables)."""
    if len(frame) > MAX_ROWS:
        where = f"`{table_name(saved_as)}`" if saved_as else "the run folder's tables"
        return Markdown(f"{len(frame)} rows: see {where}.")
    return HTML(frame.round(digits).to_html(index=False, escape=True, border=0, na_rep=""))
