"""Figures of the study. Each function takes a tidy table and returns a matplotlib ``Figure``."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

from .languages import NLI_LABELS, XNLI_LANGUAGES, encoder_label
from .stats import is_claimed

METRIC_TITLES = {
    "retrieval": "retrieval acc@1 (mean of en→X and X→en)",
    "retrieval_centered": "centered retrieval acc@1 (mean of both directions)",
    "retrieval_en_to_x": "retrieval acc@1 en→X", "retrieval_x_to_en": "retrieval acc@1 X→en",
    "retrieval_centered_en_to_x": "centered retrieval en→X",
    "retrieval_centered_x_to_en": "centered retrieval X→en",
    "cka_debiased": "debiased linear CKA (en vs X)", "cka": "linear CKA, biased (en vs X)",
    "cosine_margin": "translation cosine margin",
    "language_id": "language-identity probe accuracy (lower = more neutral)",
    "language_id_low_data": "language-identity probe, 16 sentences per language (lower = more neutral)",
}

sns.set_theme(style="whitegrid", context="notebook")


def _lang_order(langs) -> list[str]:
    present = set(langs)
    return [lang for lang in XNLI_LANGUAGES if lang in present]


def _lang_and_average_order(langs) -> list[str]:
    """The languages in XNLI order, then the averages over them present (``avg``, ``avg_non_en``)."""
    present = set(langs)
    return [*_lang_order(present), *[a for a in ("avg", "avg_non_en") if a in present]]


def label_balance(counts: pd.DataFrame, *, split: str) -> plt.Figure:
    """Stacked bars: items per label for each language of ``split``."""
    data = counts[counts["split"] == split].set_index("lang").loc[_lang_order(counts["lang"])]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    data[list(NLI_LABELS)].plot.bar(stacked=True, ax=ax, width=0.8,
                                    color=sns.color_palette("Set2", 3))
    ax.set(title=f"XNLI {split}: items per label and language", xlabel="", ylabel="items")
    ax.legend(ncol=3, loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def token_lengths(lengths: pd.DataFrame, *, split: str) -> plt.Figure:
    """Mean sentence length in tokens (the encoder's tokenizer) per language, premises and hypotheses."""
    data = lengths[lengths["split"] == split]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    sns.barplot(data=data, x="lang", y="mean_tokens", hue="field", order=_lang_order(data["lang"]), ax=ax,
                errorbar=None)
    ax.set(title=f"XNLI {split}: mean length in tokens", xlabel="", ylabel="tokens")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def training_curves(log: pd.DataFrame, *, title: str) -> plt.Figure:
    """Training loss per step (one line per condition and seed), and evaluation accuracy if logged."""
    has_eval = "eval_accuracy" in log and log["eval_accuracy"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_eval else 1, figsize=(10 if has_eval else 6, 3.4), squeeze=False)
    data = log.assign(run=log["condition"].astype(str) + " / seed " + log["seed"].astype(str))
    loss = data.dropna(subset=["loss"]) if "loss" in data else data.iloc[:0]
    if len(loss):
        sns.lineplot(data=loss, x="step", y="loss", hue="run", ax=axes[0, 0], legend=True)
    axes[0, 0].set(title=f"{title}: training loss", xlabel="step", ylabel="loss")
    if has_eval:
        ev = data.dropna(subset=["eval_accuracy"])
        sns.lineplot(data=ev, x="step", y="eval_accuracy", hue="run", marker="o", ax=axes[0, 1], legend=False)
        axes[0, 1].set(title=f"{title}: selection accuracy", xlabel="step", ylabel="accuracy")
    fig.tight_layout()
    return fig


def accuracy_by_language(accuracy: pd.DataFrame, *, chance: float = 1 / 3) -> plt.Figure:
    """Zero-shot accuracy per language and condition; bars are seed means, whiskers one sd."""
    order = _lang_order(accuracy["lang"])
    fig, ax = plt.subplots(figsize=(10, 3.6))
    sns.barplot(data=accuracy, x="lang", y="accuracy", hue="condition", order=order,
                errorbar="sd", capsize=0.1, err_kws={"linewidth": 1}, ax=ax)
    ax.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
    ax.set(title="XNLI zero-shot accuracy by language (mean ± sd over seeds)", xlabel="",
           ylabel="accuracy", ylim=(0, 1.08))
    ax.legend(fontsize=8, ncol=4, loc="upper right")
    fig.tight_layout()
    return fig


def _heatmap(ax, grid: pd.DataFrame, *, cmap: str, vmin=None, vmax=None, title: str = "") -> None:
    """A labelled layer x language heatmap drawn with ``imshow`` (fast for many panels)."""
    image = ax.imshow(grid.values, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(grid.shape[1]), grid.columns, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set(title=title, ylabel="layer")
    ax.title.set_fontsize(8)
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)


def alignment_heatmaps(table: pd.DataFrame, *, stage: str, metrics=("retrieval", "retrieval_centered",
                       "cka_debiased", "cosine_margin"), headline_layer: int | None = None) -> plt.Figure:
    """Layer x language heatmaps of ``metrics`` for one stage (mean over seeds and conditions)."""
    data = table[(table["stage"] == stage) & table["metric"].isin(metrics)]
    order = _lang_order(data["lang"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        grid = (data[data["metric"] == metric].groupby(["layer", "lang"])["value"].mean()
                .unstack("lang").reindex(columns=order).sort_index(ascending=False))
        # colours span the data (from 0 for bounded metrics), so small values stay readable
        bounded = metric not in ("cosine_margin", "cka_debiased")
        _heatmap(ax, grid, cmap="viridis", vmin=0 if bounded else None,
                 vmax=float(np.nanmax(grid.values)) or 1.0 if bounded else None,
                 title=METRIC_TITLES.get(metric, metric))
        if headline_layer is not None and headline_layer in grid.index:
            row = list(grid.index).index(headline_layer)
            ax.axhline(row - 0.5, color="white", lw=1.5)
            ax.axhline(row + 0.5, color="white", lw=1.5)
            ax.set_yticks(range(grid.shape[0]), [f"{l} (headline)" if l == headline_layer else str(l)
                                                 for l in grid.index], fontsize=7)
    fig.suptitle(f"{stage} encoder(s): alignment by layer and language", fontsize=11)
    fig.tight_layout()
    return fig


def alignment_curves(table: pd.DataFrame, *, metrics=("retrieval", "retrieval_centered", "cka_debiased",
                     "cosine_margin", "language_id", "language_id_low_data"),
                     headline_layer: int | None = None) -> plt.Figure:
    """Curves over layers: each metric averaged over the non-English languages, one line per
    stage and condition; shaded bands are the sd over seeds; dashed grey lines mark chance (the
    value for unrelated vectors: 1/sentences for retrieval, 1/languages for the probes)."""
    data = table[table["metric"].isin(metrics)].copy()
    data["encoder"] = [encoder_label(stage, cond) for stage, cond in zip(data["stage"], data["condition"])]
    per_seed = data.groupby(["encoder", "stage", "seed", "layer", "metric"], as_index=False)["value"].mean()
    present = [m for m in metrics if m in set(per_seed["metric"])]
    cols = min(3, max(1, len(present)))
    rows = -(-len(present) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), squeeze=False)
    flat = axes.ravel()
    for i, (ax, metric) in enumerate(zip(flat, present)):
        sns.lineplot(data=per_seed[per_seed["metric"] == metric], x="layer", y="value",
                     hue="encoder", style="stage", errorbar="sd", ax=ax, legend=i == 0)
        if headline_layer is not None:
            ax.axvline(headline_layer, color="0.5", ls=":", lw=1, label="headline layer" if i == 0 else None)
        chance = table.loc[table["metric"] == metric, "chance"] if "chance" in table else pd.Series(dtype=float)
        if chance.notna().any() and chance.max() > 0:
            ax.axhline(float(chance.mean()), color="0.5", ls="--", lw=1, label="chance" if i == 0 else None)
        ax.set(title=METRIC_TITLES.get(metric, metric), ylabel="", xlabel="layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.title.set_fontsize(9)
    for ax in flat[len(present):]:
        ax.axis("off")
    if len(present):
        handles, labels = flat[0].get_legend_handles_labels()
        flat[0].get_legend().remove()
        target = flat[len(present)] if len(present) < len(flat) else flat[-1]
        target.legend(handles, labels, fontsize=8, loc="center left" if len(present) < len(flat) else "best")
    fig.suptitle("Alignment over layers (mean over the non-English languages)", fontsize=11)
    fig.tight_layout()
    return fig


def alignment_change_heatmaps(changes: pd.DataFrame, *, comparison: str,
                              metrics=("retrieval", "retrieval_centered", "cka_debiased")) -> plt.Figure:
    """Layer x language heatmaps of a change between stages: one row per metric, one column per
    condition; red = the later stage is more aligned."""
    data = changes[(changes["comparison"] == comparison) & changes["metric"].isin(metrics)]
    conds = list(dict.fromkeys(data["condition"])) or ["(none)"]
    fig, axes = plt.subplots(len(metrics), len(conds), figsize=(4.6 * len(conds), 3.0 * len(metrics)),
                             squeeze=False)
    order = _lang_order(data["lang"])
    for i, metric in enumerate(metrics):
        part = data[data["metric"] == metric]
        lim = float(np.nanmax(np.abs(part["delta"]))) if len(part) else 1.0
        for j, cond in enumerate(conds):
            ax = axes[i, j]
            grid = (part[part["condition"] == cond].pivot_table(index="layer", columns="lang", values="delta")
                    .reindex(columns=order).sort_index(ascending=False))
            if grid.empty:
                ax.axis("off")
                continue
            _heatmap(ax, grid, cmap="RdBu_r", vmin=-(lim or 1), vmax=lim or 1,
                     title=f"{cond}: {METRIC_TITLES.get(metric, metric)}")
    fig.suptitle(f"Change in alignment: {comparison}", fontsize=11)
    fig.tight_layout()
    return fig


def accuracy_with_intervals(intervals: pd.DataFrame, accuracy: pd.DataFrame | None = None, *,
                            chance: float = 1 / 3) -> plt.Figure:
    """Zero-shot accuracy per language and condition (and the average over languages): bars are
    means over seeds, whiskers the 95% bootstrap interval (seeds, then items), dots single seeds."""
    order = [*_lang_order(intervals["lang"]), *[a for a in ("avg", "avg_non_en") if a in set(intervals["lang"])]]
    conds = list(dict.fromkeys(intervals["condition"]))
    colors = sns.color_palette("deep", len(conds))
    width = 0.8 / len(conds)
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for k, cond in enumerate(conds):
        rows = intervals[intervals["condition"] == cond].set_index("lang").reindex(order)
        x = np.arange(len(order)) + (k - (len(conds) - 1) / 2) * width
        ax.bar(x, rows["mean"], width=width * 0.95, color=colors[k], label=cond)
        ax.errorbar(x, rows["mean"], yerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]],
                    fmt="none", ecolor="0.15", elinewidth=1, capsize=2)
        if accuracy is not None:
            seeds = accuracy[accuracy["condition"] == cond]
            pos = {lang: x[i] for i, lang in enumerate(order)}
            ax.scatter(seeds["lang"].map(pos), seeds["accuracy"], s=6, color="0.2", zorder=3,
                       label="single seeds" if k == 0 else None)
    ax.axhline(chance, color="0.4", ls="--", lw=1, label="chance")
    ax.set_xticks(np.arange(len(order)), [o.replace("avg_non_en", "avg\nnon-en") for o in order])
    ax.set(title="XNLI zero-shot accuracy (mean over seeds; whiskers: 95% bootstrap interval)",
           ylabel="accuracy", ylim=(0, 1))
    ax.legend(fontsize=8, ncol=len(conds) + 2, loc="upper right")
    fig.tight_layout()
    return fig


def delta_heatmap(comparisons: pd.DataFrame) -> plt.Figure:
    """Language x condition heatmap of the accuracy change against the baseline, in points;
    ``*`` marks a change significant after Holm correction (p_holm < 0.05; only with enough seeds
    for a claim)."""
    order = _lang_and_average_order(comparisons["lang"])
    conds = list(dict.fromkeys(comparisons["condition"]))
    delta = comparisons.pivot(index="condition", columns="lang", values="delta").reindex(index=conds, columns=order) * 100
    sig = comparisons.pivot(index="condition", columns="lang", values="significant").reindex(index=conds, columns=order)
    lim = float(np.nanmax(np.abs(delta.values))) or 1.0
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.55 * len(conds)))
    image = ax.imshow(delta.values, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            value = delta.values[i, j]
            if np.isfinite(value):
                mark = "*" if is_claimed(sig.values[i, j]) else ""
                ax.text(j, i, f"{value:+.1f}{mark}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 * lim else "black")
    ax.set_xticks(range(len(order)), [o.replace("avg_non_en", "avg\nnon-en") for o in order])
    ax.set_yticks(range(len(conds)), conds)
    ax.grid(False)
    claims = comparisons["significant"].map(lambda v: v is not None and v == v).any()
    ax.set_title("Accuracy change against the baseline (points)"
                 + ("; * significant after Holm (p < 0.05)" if claims else "; no significance test (too few seeds)"),
                 fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="points")
    fig.tight_layout()
    return fig


def alignment_vs_accuracy(points: pd.DataFrame, result: dict) -> plt.Figure:
    """Change in alignment against change in accuracy (both F_t - F_none), one dot per language
    and condition, with a least-squares line and Spearman's rho in the title."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    points = points.assign(alignment_change=100 * points["alignment_change"],
                           accuracy_change=100 * points["accuracy_change"])  # in points
    if len(points):
        sns.scatterplot(data=points, x="alignment_change", y="accuracy_change", hue="condition", ax=ax, s=40)
        for _, row in points.iterrows():
            ax.annotate(row["lang"], (row["alignment_change"], row["accuracy_change"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        x, y = points["alignment_change"].to_numpy(), points["accuracy_change"].to_numpy()
        if len(points) >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, slope * grid + intercept, color="0.3", lw=1.2, label="least-squares fit")
            ax.legend(fontsize=8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    rho = result.get("spearman")
    low, high = result.get("ci95", [None, None])
    stat = (f"Spearman ρ = {rho:.2f} [{low:.2f}, {high:.2f}], n = {result['n']}" if rho is not None and low is not None
            else f"Spearman ρ = {rho:.2f}, interval undefined, n = {result['n']}" if rho is not None
            else f"Spearman ρ undefined (n = {result.get('n', 0)})")
    ax.set(xlabel=f"change in {result.get('metric', 'retrieval')} at layer {result.get('layer', '?')} (points)",
           ylabel="change in XNLI accuracy (points)", title=stat)
    ax.title.set_fontsize(10)
    fig.tight_layout()
    return fig


def label_shares(predictions: pd.DataFrame) -> plt.Figure:
    """The share of each predicted label per language, one panel per condition (stacked bars, over
    seeds), with black ticks at the gold labels' cumulative shares: a language whose bars are one
    colour gets its accuracy from a default answer."""
    conds = list(dict.fromkeys(predictions["condition"]))
    order = _lang_order(predictions["lang"])
    colors = sns.color_palette("Set2", len(NLI_LABELS))
    fig, axes = plt.subplots(1, len(conds), figsize=(min(5.5 * len(conds), 16), 3.4), squeeze=False, sharey=True)
    first = predictions[(predictions["condition"] == conds[0]) & (predictions["seed"] == predictions["seed"].iloc[0])]
    gold = (first.groupby("lang")["label"].value_counts(normalize=True).unstack(fill_value=0)
            .reindex(index=order, columns=range(len(NLI_LABELS)), fill_value=0))
    for ax, cond in zip(axes[0], conds):
        part = predictions[predictions["condition"] == cond]
        shares = (part.groupby("lang")["pred"].value_counts(normalize=True).unstack(fill_value=0)
                  .reindex(index=order, columns=range(len(NLI_LABELS)), fill_value=0))
        bottom = np.zeros(len(order))
        for j, name in enumerate(NLI_LABELS):
            ax.bar(range(len(order)), shares[j], bottom=bottom, color=colors[j], width=0.8, label=name)
            bottom += shares[j].to_numpy()
        cumulative = gold.cumsum(axis=1)
        for j in range(len(NLI_LABELS) - 1):
            ax.scatter(range(len(order)), cumulative[j], marker="_", s=120, color="black",
                       label="gold shares" if j == 0 else None, zorder=3)
        ax.set_xticks(range(len(order)), order, fontsize=8)
        ax.set(title=f"{cond}: predicted labels per language", ylim=(0, 1), ylabel="share of items")
        ax.title.set_fontsize(10)
        ax.grid(False)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def run_differences(differences: pd.DataFrame, *, label_a: str, label_b: str) -> plt.Figure:
    """Accuracy of run B minus run A per language (then the averages), one marker per condition,
    in points, with the 95% bootstrap interval as whiskers (``xnli-study compare``)."""
    order = _lang_and_average_order(differences["lang"])
    conds = list(dict.fromkeys(differences["condition"]))
    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / max(len(conds), 1)
    colours = sns.color_palette("deep", len(conds))
    for k, cond in enumerate(conds):
        rows = differences[differences["condition"] == cond].set_index("lang").reindex(order)
        x = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        delta = 100 * rows["delta"].to_numpy(dtype=float)
        low = delta - 100 * rows["ci_low"].to_numpy(dtype=float)
        high = 100 * rows["ci_high"].to_numpy(dtype=float) - delta
        ax.errorbar(x, delta, yerr=[low, high], fmt="o", ms=4, capsize=2, color=colours[k], label=cond)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(order)), [o.replace("avg_non_en", "avg\nnon-en") for o in order])
    paired = "paired on seeds and items" if differences["paired"].all() else "unpaired where the runs differ in seeds or items"
    ax.set(ylabel="points", xlabel="", title=f"XNLI accuracy: {label_b} minus {label_a} (95% bootstrap interval, {paired})")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, ncol=min(len(conds), 4), loc="best")
    fig.tight_layout()
    return fig
