"""The report's two result tables as LaTeX, for a paper: booktabs rules, names escaped.

``results_latex`` renders the accuracy intervals (``tables/accuracy_ci.csv``) and
``comparisons_latex`` the paired differences against the baseline (``tables/comparisons.csv``);
both as a ``table`` float that ``\\input`` places (the preamble needs ``\\usepackage{booktabs}``).
Conditions are rows, languages (then the averages) columns, numbers in percent or points.
"""

from __future__ import annotations

import pandas as pd

from .narrative import by_language
from .stats import MIN_SEEDS, is_claimed

#: LaTeX's special characters in text, and what stands for each
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
#: the averages' column headings
AVERAGES = {"avg": "avg", "avg_non_en": "avg (non-en)"}


def escape(text: object) -> str:
    """``text`` as LaTeX text: its special characters escaped.

    >>> escape("parallel_align & 50%")
    'parallel\\\\_align \\\\& 50\\\\%'
    """
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def latex_table(frame: pd.DataFrame, *, caption: str, label: str) -> str:
    """``frame`` (cells already LaTeX) as a booktabs ``table`` float: the first column left-aligned,
    the others right-aligned, headings escaped."""
    header = " & ".join(escape(c) for c in frame.columns)
    rows = [" & ".join(str(v) for v in row) for row in frame.itertuples(index=False)]
    spec = "l" + "r" * (len(frame.columns) - 1)
    return "\n".join([
        "% needs \\usepackage{booktabs}",
        "\\begin{table}[t]", "\\centering", "\\small",
        f"\\begin{{tabular}}{{{spec}}}", "\\toprule", header + " \\\\", "\\midrule",
        *(row + " \\\\" for row in rows),
        "\\bottomrule", "\\end{tabular}",
        f"\\caption{{{caption}}}", f"\\label{{{label}}}", "\\end{table}", "",
    ])


def _wide(frame: pd.DataFrame, cell) -> pd.DataFrame:
    """:func:`~xnli_study.narrative.by_language` with LaTeX text: conditions escaped, averages named
    in words, empty cells as ``--``."""
    wide = by_language(frame, cell).fillna("--")
    wide["condition"] = wide["condition"].map(escape)
    return wide.rename(columns=AVERAGES)


def _signed(points: float) -> str:
    """A signed number in points, with a true minus sign."""
    return f"{points:+.1f}".replace("-", "$-$")


def results_latex(intervals: pd.DataFrame, *, seeds: int, items: int) -> str:
    """XNLI accuracy (%) per condition and language: ``mean (low--high)``, the 95% interval of
    ``intervals`` (columns condition, lang, mean, ci_low, ci_high; accuracies in [0, 1])."""
    wide = _wide(intervals, lambda r: f"{100 * r['mean']:.1f} ({100 * r['ci_low']:.1f}--{100 * r['ci_high']:.1f})")
    over = ("seeds and test items" if seeds >= MIN_SEEDS else
            f"the test items only (with {seeds} seed{'s' if seeds > 1 else ''} the seeds are not resampled)")
    caption = (f"XNLI accuracy (\\%) by condition and language, {items} test items per language: mean over "
               f"{seeds} seed{'s' if seeds > 1 else ''} and 95\\% bootstrap interval over {over}.")
    return latex_table(wide, caption=caption, label="tab:xnli-accuracy")


def comparisons_latex(comparisons: pd.DataFrame, *, seeds: int) -> str:
    """Each condition minus the baseline in points: ``delta [low, high]`` with its paired 95%
    interval, ``*`` where significant after Holm correction (as the report marks them; only with
    3 seeds or more)."""
    if comparisons.empty:
        return "% only the baseline (none) ran: there is no condition to compare with it\n"
    wide = _wide(comparisons, lambda r: (f"{_signed(100 * r['delta'])} [{_signed(100 * r['ci_low'])}, "
                                         f"{_signed(100 * r['ci_high'])}]"
                                         + ("$^{*}$" if is_claimed(r["significant"]) else "")))
    claim = ("$^{*}$: significant after Holm correction." if seeds >= MIN_SEEDS else
             f"With {seeds} seed{'s' if seeds > 1 else ''} the intervals cover test items only; no difference "
             "is called significant (that needs 3 seeds or more).")
    caption = ("Change in XNLI accuracy (points) of each condition against \\texttt{none}, paired on the same "
               f"seeds and items, with its 95\\% bootstrap interval. {claim}")
    return latex_table(wide, caption=caption, label="tab:xnli-comparisons")
