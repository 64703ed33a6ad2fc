"""Outputs a paper can use: the LaTeX tables, every figure also as PDF, and ``xnli-study compare``
between two run folders (paired where they share seeds and items)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from xnli_study import cli, stats
from xnli_study.compare import (ACCURACY_FILE, ALIGNMENT_FILE, FIGURE_FILE, accuracy_differences, alignment_differences,
                                compare_runs)
from xnli_study.errors import StudyError
from xnli_study.latex import comparisons_latex, escape, results_latex
from xnli_study.runfolder import RunFolder


# ---- LaTeX ----------------------------------------------------------------------------------------
def test_escape_covers_every_special_character():
    assert escape("a_b & 50% $x #1 {y} ~z ^w \\v") == (
        r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{}z \textasciicircum{}w \textbackslash{}v")


def comparison_rows(significant) -> pd.DataFrame:
    rows = []
    for cond, flag in (("parallel_align", significant), ("sst2", False if significant else None)):
        for lang, delta in (("en", 0.01), ("fr", -0.042), ("avg_non_en", 0.02)):
            rows.append({"condition": cond, "lang": lang, "delta": delta, "ci_low": delta - 0.03,
                         "ci_high": delta + 0.03, "significant": flag if lang == "fr" else (False if significant else None)})
    return pd.DataFrame(rows)


def body(tex: str) -> list[str]:
    lines = tex.splitlines()
    return lines[lines.index("\\midrule") + 1:lines.index("\\bottomrule")]


def test_comparisons_table_marks_what_the_report_marks():
    tex = comparisons_latex(comparison_rows(True), seeds=3)
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "booktabs" in tex
    rows = body(tex)
    assert [r.split(" & ")[0] for r in rows] == [r"parallel\_align", "sst2"]
    header = tex.splitlines()[tex.splitlines().index("\\toprule") + 1]
    assert header == r"condition & en & fr & avg (non-en) \\"
    assert all(len(r.split(" & ")) == 4 for r in rows)
    # the significant cell (parallel_align, fr) and no other carries the mark; minus signs are math
    assert rows[0].split(" & ")[2] == "$-$4.2 [$-$7.2, $-$1.2]$^{*}$"
    assert sum(r.count("$^{*}$") for r in rows) == 1
    assert "significant after Holm" in tex
    few = comparisons_latex(comparison_rows(None), seeds=2)
    assert "$^{*}$" not in "\n".join(body(few)) and "no difference is called significant" in few


def test_results_table_gives_mean_and_interval_in_percent():
    intervals = pd.DataFrame([{"condition": "none", "lang": "fr", "mean": 0.5123, "ci_low": 0.45, "ci_high": 0.571},
                              {"condition": "none", "lang": "en", "mean": 0.9, "ci_low": 0.85, "ci_high": 0.94}])
    tex = results_latex(intervals, seeds=1, items=120)
    assert body(tex) == [r"none & 90.0 (85.0--94.0) & 51.2 (45.0--57.1) \\"]  # languages in XNLI order
    assert "120 test items per language" in tex and "test items only (with 1 seed" in tex
    # with fewer than 3 seeds the interval covers the items only, as the report says; then seeds too
    assert "test items only (with 2 seeds the seeds are not resampled)" in results_latex(intervals, seeds=2, items=120)
    assert "interval over seeds and test items" in results_latex(intervals, seeds=3, items=120)
    assert "only the baseline" in comparisons_latex(comparison_rows(None).iloc[:0], seeds=1)


@pytest.mark.slow
def test_the_smoke_run_writes_latex_tables_and_pdf_figures(smoke_run):
    run_dir, _ = smoke_run
    folder = RunFolder(run_dir)
    results = folder.table("results_tex").read_text()
    comparisons = folder.table("comparisons_tex").read_text()
    conditions = list(pd.read_csv(folder.table("accuracy_ci"))["condition"].unique())
    assert [r.split(" & ")[0] for r in body(results)] == [escape(c) for c in conditions]
    assert r"parallel\_align" in comparisons and "parallel_align" not in comparisons.replace(r"parallel\_align", "")
    pngs = sorted(folder.figure("x").parent.glob("*.png"))
    assert pngs and all(p.with_suffix(".pdf").is_file() for p in pngs)
    assert all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF") for p in pngs)


# ---- compare: the statistics --------------------------------------------------------------------
def predictions(seeds, *, flip: int = 0, rng_seed: int = 0, items: int = 50) -> pd.DataFrame:
    """Correctness of two conditions in two languages; ``flip`` items of (sst2, fr) made right."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for cond in ("none", "sst2"):
        for lang in ("en", "fr"):
            for k, seed in enumerate(seeds):
                correct = (rng.random(items) < 0.6).astype(int)
                if cond == "sst2" and lang == "fr":
                    correct[:10] = 0
                    correct[:flip] = 1
                rows += [{"condition": cond, "lang": lang, "seed": seed, "id": i, "correct": c}
                         for i, c in enumerate(correct)]
    return pd.DataFrame(rows)


def test_accuracy_differences_pair_runs_that_share_seeds_and_items():
    a, b = predictions([0, 1, 2]), predictions([0, 1, 2], flip=10)
    diff = accuracy_differences(a, b, resamples=500).set_index(["condition", "lang"])
    assert diff["paired"].all()
    assert diff.loc[("sst2", "fr"), "delta"] == pytest.approx(10 / 50)  # B minus A, not A minus B
    assert diff.loc[("sst2", "avg_non_en"), "delta"] == pytest.approx(10 / 50)
    assert diff.loc[("sst2", "avg"), "delta"] == pytest.approx(5 / 50)
    same = diff.drop(index=[("sst2", "fr"), ("sst2", "avg"), ("sst2", "avg_non_en")])
    assert (same["delta"] == 0).all() and (same["ci_low"] == 0).all() and (same["ci_high"] == 0).all()
    low, high = diff.loc[("sst2", "fr"), ["ci_low", "ci_high"]]
    assert 0 < low < 0.2 < high


def test_runs_of_other_seeds_are_compared_unpaired_and_wider():
    a = predictions([0, 1, 2])
    # B: A's own data with 10 items made right, once on A's seeds and once with the seeds renamed
    paired = accuracy_differences(a, predictions([0, 1, 2], flip=10), resamples=500)
    unpaired = accuracy_differences(a, predictions([3, 4, 5], flip=10), resamples=500)
    assert not unpaired["paired"].any() and paired["paired"].all()
    pd.testing.assert_series_equal(paired["delta"], unpaired["delta"])  # the same data, seeds renamed
    width = lambda t: (t["ci_high"] - t["ci_low"]).to_numpy()
    assert (width(unpaired) > width(paired)).all()  # pairing takes out what the runs share


def test_independent_comparison_covers_the_true_difference():
    """Two runs on independent samples of items: the 95% interval of the difference of their
    accuracies covers the true difference in about 95% of simulated pairs."""
    rng = np.random.default_rng(7)
    covered = 0
    sims = 300
    for _ in range(sims):
        a = (rng.random((1, 150)) < 0.50).astype(float)
        b = (rng.random((1, 150)) < 0.62).astype(float)
        r = stats.independent_comparison(b, a, resamples=400)
        covered += r.low <= 0.12 <= r.high
    assert 0.91 <= covered / sims <= 0.99


def test_alignment_differences_resample_seeds_only_with_enough_of_them():
    def table(values: dict[int, float]) -> pd.DataFrame:
        return pd.DataFrame([{"stage": "final", "condition": "sst2", "seed": s, "layer": 2, "lang": lang,
                              "metric": "retrieval", "value": v + (0.1 if lang == "de" else 0)}
                             for s, v in values.items() for lang in ("en", "fr", "de")])
    few = alignment_differences(table({0: 0.3}), table({0: 0.5}), layer_a=2, layer_b=2, resamples=200)
    assert few.set_index("lang").loc["fr", "delta"] == pytest.approx(0.2) and few["ci_low"].isna().all()
    assert set(few["lang"]) == {"fr", "de", "avg_non_en"}  # English is the anchor, not compared
    many = alignment_differences(table({0: 0.3, 1: 0.35, 2: 0.4}), table({0: 0.5, 1: 0.5, 2: 0.65}),
                                 layer_a=2, layer_b=2, resamples=200)
    row = many.set_index("lang").loc["avg_non_en"]
    assert row["paired"] and row["delta"] == pytest.approx(0.2)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["ci_low"] > 0.1
    with pytest.raises(StudyError, match="headline layers differ"):
        alignment_differences(table({0: 0.3}), table({0: 0.5}), layer_a=2, layer_b=3, resamples=10)


# ---- compare: the command -------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_two_run_folders_from_the_command_line(minimal_run, tmp_path, capsys):
    _, run = minimal_run
    copy = tmp_path / "rerun"
    shutil.copytree(run, copy)
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(run), str(copy), "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "avg_non_en" in printed and "paired on seeds and items" in printed and str(out) in printed
    acc = pd.read_csv(out / ACCURACY_FILE)
    assert set(acc["condition"]) == {"none", "sst2"} and set(acc["lang"]) >= {"en", "fr", "avg_non_en"}
    assert (acc["delta"] == 0).all() and acc["paired"].all()  # a copy: the same numbers
    align = pd.read_csv(out / ALIGNMENT_FILE)
    assert set(align["stage"]) == {"pretrained", "intermediate", "final"} and (align["delta"] == 0).all()
    assert (out / FIGURE_FILE).is_file() and (out / FIGURE_FILE).with_suffix(".pdf").is_file()

    # a run of another design is refused in one line
    other = tmp_path / "other"
    shutil.copytree(run, other)
    preds = pd.read_parquet(RunFolder(other).table("predictions"))
    preds[preds["condition"] == "none"].to_parquet(RunFolder(other).table("predictions"), index=False)
    assert cli.main(["compare", str(run), str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert "differ in their conditions" in err and len(err.splitlines()) == 1


def test_compare_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path), str(tmp_path)]) == 1
    assert "is not a run folder" in capsys.readouterr().err
    with pytest.raises(StudyError):
        compare_runs(tmp_path / "a", tmp_path / "b")
