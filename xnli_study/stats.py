"""Uncertainty for every number the study reports (STUDY.md section 4).

* :func:`bootstrap_mean`: the mean of a ``seeds x items`` matrix with a 95% interval from a
  bootstrap that resamples seeds and test items (crossed: each draw picks seeds and items
  independently, since every seed is scored on the same items).
* :func:`paired_comparison`: a condition against the baseline on the same seeds and items: the
  mean difference, its bootstrap interval (the same resampled seeds and items for both) and the
  two-sided paired-bootstrap p-value from the same draws.
* :func:`independent_comparison`: the same for two runs that share no seeds or items (each
  resampled on its own), as ``xnli-study compare`` uses for unpaired run folders.
* :func:`holm`: Holm's step-down adjustment over a family of tests; :func:`holm_families` says
  which tests form a family (conditions and languages together by default).
* :func:`spearman_with_ci`: Spearman's rank correlation with a bootstrap interval over points;
  :func:`alignment_vs_transfer` instead recomputes both changes inside each draw of the seed x
  item bootstrap.

Significance needs seeds: with fewer than :data:`MIN_SEEDS` seeds the intervals cover test items
only (run-to-run variation is not sampled) and no test is called significant (``None``).

The tables the stages write (:func:`accuracy_intervals`, :func:`compare_conditions`,
:func:`alignment_vs_transfer`) are built from per-example predictions, so every statistic can be
recomputed from ``predictions.parquet``. Accuracies and differences are in [0, 1] units.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

DEFAULT_RESAMPLES = 2000
LEVEL = 0.95
#: the fewest seeds with which a comparison may be called significant (STUDY.md section 4)
MIN_SEEDS = 3
#: Holm families: every (condition, language) test in one family, the averages over languages each
#: across conditions; or, narrower, each language and each average across conditions
FAMILIES = ("conditions_and_languages", "conditions")


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval (``level`` coverage) and, for comparisons, a p-value."""

    estimate: float
    low: float
    high: float
    p: float | None = None


@lru_cache(maxsize=16)
def _counts(n: int, resamples: int, seed: int, salt: int) -> np.ndarray:
    """``resamples x n`` bootstrap counts: how often each of ``n`` units is drawn (each row sums to n).
    Cached so that every condition is resampled on exactly the same seeds and items."""
    rng = np.random.default_rng([seed, salt, n])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _seed_counts(n_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """How often each seed is drawn in each resample: resampled with :data:`MIN_SEEDS` seeds or
    more; with fewer, every seed once in every draw (two runs cannot stand for the distribution of
    runs, so the intervals then cover test items only, as the report says)."""
    if n_seeds < MIN_SEEDS:
        return np.ones((resamples, n_seeds))
    return _counts(n_seeds, resamples, seed, 1)


def _bootstrap_means(matrix: np.ndarray, *, resamples: int, seed: int) -> np.ndarray:
    """Means of ``matrix`` (seeds x items) over ``resamples`` two-level bootstrap draws."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or min(m.shape) == 0:
        raise ValueError(f"expected a non-empty seeds x items matrix, got shape {m.shape}")
    n_seeds, n_items = m.shape
    seed_counts = _seed_counts(n_seeds, resamples, seed)
    item_counts = _counts(n_items, resamples, seed, 2)
    # sum over drawn seeds of each item's value, then weighted by how often each item is drawn
    per_item = seed_counts @ m  # resamples x items
    return np.einsum("bi,bi->b", per_item, item_counts) / (n_seeds * n_items)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_mean(matrix, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                   level: float = LEVEL) -> Interval:
    """Mean of a ``seeds x items`` matrix with a percentile interval from resampling seeds, then items.

    >>> m = np.array([[1, 0, 1, 1], [1, 1, 0, 1]])
    >>> r = bootstrap_mean(m, resamples=500)
    >>> r.estimate, r.low <= r.estimate <= r.high
    (0.75, True)
    """
    m = np.asarray(matrix, dtype=np.float64)
    draws = _bootstrap_means(m, resamples=resamples, seed=seed)
    return Interval(float(m.mean()), *_percentiles(draws, level))


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided p-value that the mean is zero, from bootstrap draws of it:
    ``min(1, 2 * (1 + #{draws on the far side of 0}) / (1 + draws))``, where the far side is the
    side opposite the majority of the draws: the percentile interval inverted (Efron and
    Tibshirani 1993, ch. 16). The 95% interval excludes zero when p is below about 0.05; draws
    that are all zero give exactly 1.

    >>> bootstrap_p(np.zeros(100))
    1.0
    """
    d = np.asarray(draws, dtype=np.float64)
    below, above = int(np.sum(d <= 0)), int(np.sum(d >= 0))
    return min(1.0, 2 * (1 + min(below, above)) / (1 + d.size))


def paired_comparison(treatment, baseline, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> Interval:
    """``treatment - baseline`` for two ``seeds x items`` matrices on the same seeds (rows) and
    items (columns): the mean difference, and from one paired two-level bootstrap (the same
    resampled seeds and items for both) its interval and a two-sided p-value (:func:`bootstrap_p`),
    so that the two agree (up to the interpolation of the percentiles)."""
    t, b = np.asarray(treatment, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if t.shape != b.shape:
        raise ValueError(f"paired matrices differ in shape: {t.shape} vs {b.shape}")
    diff = t - b
    draws = _bootstrap_means(diff, resamples=resamples, seed=seed)
    p = bootstrap_p(draws)
    return Interval(float(diff.mean()), *_percentiles(draws, level), p=p)


def independent_comparison(treatment, baseline, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           level: float = LEVEL) -> Interval:
    """``mean(treatment) - mean(baseline)`` for two ``seeds x items`` matrices that share neither
    seeds nor items (two runs of other seeds or test samples): each is resampled on its own (seeds
    and items drawn independently for the two), the difference taken draw by draw, giving its
    percentile interval and a two-sided p-value (:func:`bootstrap_p`). Wider than
    :func:`paired_comparison` on paired data, which it does not exploit."""
    t, b = np.asarray(treatment, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    draws = (_bootstrap_means(t, resamples=resamples, seed=seed)
             - _bootstrap_means(b, resamples=resamples, seed=seed + 1))  # other seed: independent draws
    return Interval(float(t.mean() - b.mean()), *_percentiles(draws, level), p=bootstrap_p(draws))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; never below the raw ones).

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their ranks), row-wise for 2-D input."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def spearman_with_ci(x, y, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     level: float = LEVEL) -> dict:
    """Spearman's rho between ``x`` and ``y`` with a percentile bootstrap interval over the points
    and the two-sided bootstrap p-value from the same draws (:func:`bootstrap_p`). Draws where a
    side is constant are skipped. ``rho`` is None when fewer than 3 points or a constant side leave it undefined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = int(x.size)
    rho = spearman(x, y) if n >= 3 else float("nan")
    if not np.isfinite(rho):
        return {"spearman": None, "ci95": [None, None], "p": None, "n": n}
    rng = np.random.default_rng([seed, 4, n])
    idx = rng.integers(0, n, size=(resamples, n))
    return {"spearman": rho, **_rank_correlation_draws(x[idx], y[idx], resamples=resamples, level=level), "n": n}


# ---- the study's tables -------------------------------------------------------------------------
def _in_order(values) -> list:
    """The distinct values in order of first appearance (fast on long columns)."""
    return list(pd.unique(pd.Series(values)))


def language_groups(languages) -> dict[str, list[str]]:
    """Each language alone, ``avg`` (all of them) and ``avg_non_en`` (all but English)."""
    langs = _in_order(languages)
    groups = {lang: [lang] for lang in langs}
    groups["avg"] = langs
    if "en" in langs and len(langs) > 1:
        groups["avg_non_en"] = [lang for lang in langs if lang != "en"]
    return groups


def correctness_table(predictions: pd.DataFrame, condition: str) -> pd.DataFrame:
    """0/1 correctness of ``condition``: one row per seed, one column per (language, item id).
    Built once per condition; :func:`correctness` slices it."""
    rows = predictions[predictions["condition"] == condition]
    return rows.pivot_table(index="seed", columns=["lang", "id"], values="correct", aggfunc="mean")


def correctness(table: pd.DataFrame, langs: list[str], seeds: list[int] | None = None, *,
                name: str = "") -> tuple[np.ndarray, list[int]]:
    """The ``seeds x items`` matrix from a :func:`correctness_table`: 0/1 correctness for one
    language, or each item's mean over ``langs`` (XNLI items are parallel: the same id in every
    language); rows in seed order, columns in item-id order."""
    part = table.loc[:, table.columns.get_level_values("lang").isin(langs)]
    matrix = part.T.groupby(level="id").mean().T
    if seeds is not None:
        matrix = matrix.reindex(seeds)
    if matrix.isna().any().any():
        raise ValueError(f"{name}/{','.join(langs)}: some seeds lack some items; cannot pair them")
    return matrix.to_numpy(dtype=np.float64), [int(s) for s in matrix.index]


def accuracy_intervals(predictions: pd.DataFrame, *, resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> pd.DataFrame:
    """Per condition and language (and ``avg``, ``avg_non_en``: the means over languages): mean
    accuracy, sd over seeds and the bootstrap interval (seeds, then items)."""
    rows = []
    groups = language_groups(predictions["lang"])
    for cond in _in_order(predictions["condition"]):
        table = correctness_table(predictions, cond)
        for lang, members in groups.items():
            m, seeds = correctness(table, members, name=cond)
            r = bootstrap_mean(m, resamples=resamples, seed=seed)
            per_seed = m.mean(axis=1)
            rows.append({"condition": cond, "lang": lang, "mean": r.estimate,
                         "sd": float(per_seed.std(ddof=1)) if len(seeds) > 1 else float("nan"),
                         "ci_low": r.low, "ci_high": r.high, "seeds": len(seeds), "items": m.shape[1]})
    return pd.DataFrame(rows)


def is_claimed(value) -> bool:
    """True only for a significance flag that is set and true (False, None and NaN, the mark of a
    run with too few seeds for a claim, are not)."""
    return value is not None and value == value and bool(value)


def holm_families(table: pd.DataFrame, *, correct_across: str = "conditions_and_languages") -> pd.Series:
    """The Holm family of each row of a comparison table (columns ``condition``, ``lang``).

    ``conditions_and_languages`` (default): every per-language test of every condition forms one
    family, and each average over languages (``avg``, ``avg_non_en``) one family across conditions.
    ``conditions``: each language and each average its own family, across conditions.
    """
    if correct_across not in FAMILIES:
        raise ValueError(f"correct_across must be one of {FAMILIES}, got {correct_across!r}")
    is_average = table["lang"].astype(str).str.startswith("avg")
    if correct_across == "conditions":
        return table["lang"].astype(str)
    return table["lang"].astype(str).where(is_average, "languages")


def family_in_words(correct_across: str, *, n_conditions: int, n_languages: int) -> str:
    """The Holm family, said in a sentence for the report."""
    conds = f"{n_conditions} condition{'s' if n_conditions != 1 else ''}"
    if correct_across == "conditions":
        return (f"Holm correction runs across the {conds}, separately for each language and each average, "
                f"not across languages: with {n_languages} languages, a per-language list of significant "
                "languages is looser than the averages")
    return (f"Holm correction runs across the {conds} and the {n_languages} languages together "
            f"({n_conditions * n_languages} per-language tests in one family); each average over languages "
            f"is corrected across the {conds}")


def holm_table(table: pd.DataFrame, *, seeds: int, correct_across: str = "conditions_and_languages",
               level: float = LEVEL) -> pd.DataFrame:
    """Add ``p_holm`` (Holm within each family of :func:`holm_families`) and ``significant``
    (``p_holm < 1 - level``; ``None`` with fewer than :data:`MIN_SEEDS` seeds) to a table of
    p-values (columns ``condition``, ``lang``, ``p``)."""
    out = table.copy()
    families = holm_families(out, correct_across=correct_across)
    out["p_holm"] = out.groupby(families, sort=False)["p"].transform(lambda p: holm(p.to_numpy()))
    if seeds >= MIN_SEEDS:
        out["significant"] = out["p_holm"] < (1 - level)
    else:
        out["significant"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    return out


def compare_conditions(predictions: pd.DataFrame, *, baseline: str = "none",
                       resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = LEVEL,
                       correct_across: str = "conditions_and_languages") -> pd.DataFrame:
    """Every condition against ``baseline`` per language and on the averages over languages
    (``avg``, ``avg_non_en``):
    ``delta`` (condition - baseline), ``ci_low, ci_high``, ``p`` and ``p_holm`` (Holm within the
    families of :func:`holm_families`), ``significant`` (p_holm < 0.05; ``None``, no claim, with
    fewer than :data:`MIN_SEEDS` seeds)."""
    conditions = [c for c in _in_order(predictions["condition"]) if c != baseline]
    cols = ["condition", "lang", "delta", "ci_low", "ci_high", "p", "p_holm", "significant", "seeds", "items"]
    if not conditions:
        return pd.DataFrame(columns=cols)
    groups = language_groups(predictions["lang"])
    base_table = correctness_table(predictions, baseline)
    rows = []
    for cond in conditions:
        seeds = sorted(set(predictions.loc[predictions["condition"] == cond, "seed"])
                       & set(predictions.loc[predictions["condition"] == baseline, "seed"]))
        if not seeds:
            raise ValueError(f"{cond} and {baseline} share no seed; comparisons are paired by seed")
        treated = correctness_table(predictions, cond)
        for lang, members in groups.items():
            t, _ = correctness(treated, members, seeds, name=cond)
            b, _ = correctness(base_table, members, seeds, name=baseline)
            r = paired_comparison(t, b, resamples=resamples, seed=seed, level=level)
            rows.append({"condition": cond, "lang": lang, "delta": r.estimate, "ci_low": r.low,
                         "ci_high": r.high, "p": r.p, "seeds": len(seeds), "items": t.shape[1]})
    table = pd.DataFrame(rows)
    table = holm_table(table, seeds=int(table["seeds"].min()), correct_across=correct_across, level=level)
    return table[cols]


def alignment_vs_transfer(alignment: pd.DataFrame, predictions: pd.DataFrame, *, layer: int,
                          metric: str = "retrieval", baseline: str = "none",
                          resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                          level: float = LEVEL) -> tuple[dict, pd.DataFrame]:
    """Does the change in alignment predict the change in transfer?

    One point per (condition != baseline, language != en): the change of ``metric`` at ``layer``
    in the final model (F_t - F_baseline) against the change in XNLI accuracy (F_t - F_baseline),
    both paired by seed and averaged over the shared seeds. Spearman's rho over the points, with a
    percentile interval and a two-sided p-value from the seed x item bootstrap of
    :func:`bootstrap_mean`: in each draw, the same resampled seeds enter both changes and the same
    resampled items the accuracy change, and rho is recomputed over the points (so seed and item
    noise both reach the interval). Returns the summary (``spearman, ci95, p, n, metric, layer,
    method``) and the points.
    """
    final = alignment[(alignment["stage"] == "final") & (alignment["metric"] == metric)
                      & (alignment["layer"] == layer) & (alignment["lang"] != "en")]
    align = final.groupby(["condition", "lang", "seed"])["value"].mean()
    points, align_draws, acc_draws = [], [], []
    base_table = correctness_table(predictions, baseline)
    for cond in [c for c in _in_order(predictions["condition"]) if c != baseline]:
        seeds = sorted(set(predictions.loc[predictions["condition"] == cond, "seed"])
                       & set(predictions.loc[predictions["condition"] == baseline, "seed"]))
        treated = correctness_table(predictions, cond)
        seed_counts = _seed_counts(len(seeds), resamples, seed)  # the draws of every comparison
        for lang in _in_order(predictions.loc[predictions["lang"] != "en", "lang"]):
            try:
                a = np.array([align[(cond, lang, s)] - align[(baseline, lang, s)] for s in seeds])
            except KeyError:
                continue
            t, _ = correctness(treated, [lang], seeds, name=cond)
            b, _ = correctness(base_table, [lang], seeds, name=baseline)
            diff = t - b
            points.append({"condition": cond, "lang": lang, "alignment_change": float(a.mean()),
                           "accuracy_change": float(diff.mean())})
            align_draws.append(seed_counts @ a / len(seeds))
            acc_draws.append(_bootstrap_means(diff, resamples=resamples, seed=seed))
    frame = pd.DataFrame(points, columns=["condition", "lang", "alignment_change", "accuracy_change"])
    result = {"spearman": None, "ci95": [None, None], "p": None, "n": len(frame)}
    if len(frame) >= 3:
        rho = spearman(frame["alignment_change"], frame["accuracy_change"])
        if np.isfinite(rho):
            result["spearman"] = rho
            result.update(_rank_correlation_draws(np.stack(align_draws, 1), np.stack(acc_draws, 1),
                                                  resamples=resamples, level=level))
    result.update({"metric": metric, "layer": int(layer),
                   "method": "seed x item bootstrap: both changes recomputed in every draw"})
    return result, frame


def _rank_correlation_draws(x: np.ndarray, y: np.ndarray, *, resamples: int, level: float) -> dict:
    """Interval and p-value of Spearman's rho from ``resamples x points`` draws of both sides;
    draws where a side is constant are skipped, and most of them constant leaves it undefined."""
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    ok = denom > 0
    draws = (rx * ry).sum(axis=1)[ok] / denom[ok]
    if draws.size < resamples / 2:
        return {"ci95": [None, None], "p": None}
    return {"ci95": list(_percentiles(draws, level)), "p": bootstrap_p(draws)}
