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

    config, run_dir = run.config, Path(run.run_dir)
    tables = run_dir / "tables"
    acc = read_table(tables / "accuracy.csv")
    acc_mean = read_table(tables / "accuracy_mean.csv")
    transfer = read_table(tables / "transfer_summary.csv")
    align = read_table(tables / "alignment.csv")
    n_layers = int(align["layer"].max())
    head = headline_layer(config.alignment.headline_layer, n_layers)

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
        "xnli_accuracy": nested(acc_mean, "mean"),
        "xnli_accuracy_sd": nested(acc_mean, "sd"),
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
        return round(value, digits)
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


def narrative(summary: dict, *, limits: str = "") -> str:
    """The report's opening section, in Markdown, generated from ``summary``."""
    acc = summary["transfer"]
    base = acc.get("none", {})
    seeds = summary["seeds"]
    chance = summary.get("chance", 1 / 3)
    items = summary["items_per_language"]
    lines = [
        f"**Profile `{summary['profile']}`**, encoder `{summary['encoder']}`, conditions "
        f"{', '.join('`' + c + '`' for c in summary['conditions'])}, "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); "
        f"XNLI {summary['xnli_split']} ({summary['xnli_source']}), {items} items "
        f"in each of {len(summary['languages'])} languages. Accuracies are means over seeds; "
        f"chance is {_pct(chance)}.",
        "",
    ]
    if base:
        transfer = ("which is close to chance: no zero-shot transfer is visible"
                    if _near_chance(base["avg_non_en"], chance, items) else
                    "above chance")
        lines.append(
            f"The baseline (no intermediate task) reaches {_pct(base['en'])} on English and "
            f"{_pct(base['avg_non_en'])} on average over the other languages, {transfer} "
            f"(transfer gap {100 * base['transfer_gap']:.1f} points)."
        )
    for cond, row in acc.items():
        if cond == "none" or not base:
            continue
        delta = row["avg_non_en"] - base["avg_non_en"]
        lines.append(
            f"With `{cond}` as the intermediate task: English {_pct(row['en'])}, the other languages "
            f"{_pct(row['avg_non_en'])} on average, {abs(100 * delta):.1f} points "
            f"{'above' if delta > 0 else 'below' if delta < 0 else 'equal to'} the baseline."
        )
    if len(acc) > 1:
        lines.append("No significance test is computed in this report: read differences of a few "
                     "points on this many items and seeds as noise.")
    al = summary["alignment"]
    enc = al["at_headline_layer"]
    p = enc.get("P", {})
    if p:
        layer = al["headline_layer"]
        lines += ["", (
            f"Alignment is reported at layer {layer} of {al['n_layers']}, fixed before the run "
            f"(layer 0 is the embedding output; sentence vectors are the {al['pooling']}); values "
            f"are means over the non-English languages. The pretrained encoder P retrieves "
            f"translations with {_pct(p['retrieval'])} accuracy@1 (centered: "
            f"{_pct(p['retrieval_centered'])}); its linear CKA with English is {p['cka']:.2f}. "
            f"Its best layer for retrieval is layer {al['best_layer_pretrained_retrieval']}, shown apart."
        )]
        for name, values in enc.items():
            if name.startswith("I["):
                lines.append(
                    f"Intermediate training on `{name[2:-1]}` moves retrieval at layer {layer} from "
                    f"{_pct(p['retrieval'])} (P) to {_pct(values['retrieval'])} and CKA from "
                    f"{p['cka']:.2f} to {values['cka']:.2f}."
                )
        f_base = enc.get("F[none]")
        for name, values in enc.items():
            if name.startswith("F[") and name != "F[none]" and f_base:
                lines.append(
                    f"After MNLI fine-tuning, {name} retrieves {_pct(values['retrieval'])} against "
                    f"{_pct(f_base['retrieval'])} for the baseline F[none] (CKA {values['cka']:.2f} "
                    f"against {f_base['cka']:.2f})."
                )
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
        lines.append(
            f"- `{cond}`: held-out accuracy {acc.mean():.3f}"
            + (f" (sd {acc.std(ddof=1):.3f} over {len(g)} seeds)" if len(g) > 1 else "")
            + f", chance {g['chance'].iloc[0]:.3f}; {int(g['train_examples'].iloc[0])} training examples."
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
