"""The whole smoke study through papermill, as `make study` runs it, into a temporary project tree."""

import base64
import html as html_lib
import hashlib
import json
import re
import shutil

import pandas as pd
import nbformat
import papermill as pm
import pytest

from xnli_study import narrative, pipeline, stages
from xnli_study.config import load_params
from xnli_study.environment import ensure_kernel
from xnli_study.languages import XNLI_LANGUAGES
from xnli_study.runfolder import RunFolder
from xnli_study.sidebyside import FINISHED, STARTED
from xnli_study.units import stage_units

pytestmark = pytest.mark.slow


def test_run_folder_is_complete(smoke_run):
    run_dir, _ = smoke_run
    assert run_dir.name == "smoke" and run_dir.parent.name == "outputs"
    for rel in ("params.yaml", "manifest.json", "summary.json", "report.html",
                "tables/accuracy.csv", "tables/predictions.parquet", "tables/alignment.csv"):
        assert (run_dir / rel).is_file(), rel
    for stage in stages.NOTEBOOK_STAGES:
        assert (run_dir / "notebooks" / stage.notebook).is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {s: v["status"] for s, v in manifest["stages"].items()} == {s.name: "done" for s in stages.STAGES}
    # the report's HTML is the render step's recorded output
    assert stages.read_record(run_dir, "render")["outputs"] == ["report.html"]
    assert manifest["seeds"] == [0, 1] and manifest["packages"]["torch"].startswith("2.")
    # provenance: the sample the run read, file by file, and no hub repository (all offline)
    sample = manifest["data_files"]["sample"]
    assert "xnli/xnli.test.tsv" in sample["sha256"]
    assert sample["sha256"]["xnli/xnli.test.tsv"] == hashlib.sha256(
        (run_dir / "data" / "sample" / "xnli" / "xnli.test.tsv").read_bytes()).hexdigest()
    assert manifest["hub"] == {}
    # each dataset tokenised once per run: MNLI train and English dev (shared by the 6 MNLI units),
    # sst2 and parallel_align whole (each seed selects its training and held-out rows from them)
    tokenized = [p for p in (run_dir / "cache" / "tokenized").iterdir() if not p.name.startswith(".")]
    assert len(tokenized) == 2 + 1 + 1


def test_training_units_ran_side_by_side(smoke_run):
    """The smoke profile trains two units at a time (distributed.unit_processes: 2), both training
    stages' units in one set of workers ahead of their notebooks: each training unit's worker
    output is in its launch.log, with the worker's start and end lines, and the manifest says so."""
    run_dir, _ = smoke_run
    folder = RunFolder(run_dir)
    config = load_params(run_dir / "params.yaml")
    for stage in ("intermediate", "transfer"):
        for unit in stage_units(config, stage):
            text = folder.unit(stage, unit.name, "launch_log").read_text()
            assert f"{STARTED} {unit.label}" in text and f"{FINISHED} {unit.label} ok" in text, unit.label
    ahead = json.loads(folder.manifest.read_text())["stages"]["intermediate"]["units_trained_ahead"]
    assert {stage: sorted(names) for stage, names in ahead.items()} == {
        stage: sorted(u.name for u in stage_units(config, stage)) for stage in ("intermediate", "transfer")}


def test_summary_has_every_language_and_english_is_learned(smoke_run):
    run_dir, _ = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert set(summary["xnli_accuracy"]) == {"none", "sst2", "parallel_align"}
    for condition, by_lang in summary["xnli_accuracy"].items():
        assert set(by_lang) == set(XNLI_LANGUAGES)
        assert all(0.0 <= a <= 1.0 for a in by_lang.values())
    # English is learned in every condition and seed (a stalled run is a recipe problem)
    acc = pd.read_csv(run_dir / "tables" / "accuracy.csv")
    english = acc[acc["lang"] == "en"].set_index(["condition", "seed"])["accuracy"]
    assert len(english) == 6 and (english >= 0.85).all(), english.to_dict()


def test_smoke_study_detects_the_planted_answer(smoke_run):
    """The positive control (STUDY.md section 8): transfer graded by anchor share, and
    parallel_align raising both alignment at the headline layer and non-English accuracy."""
    run_dir, _ = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    base = summary["xnli_accuracy"]["none"]
    high, low = ["fr", "es", "de"], ["el", "bg", "ru", "ar", "th", "zh", "hi", "ur"]
    assert sum(base[x] for x in high) / 3 >= 0.45, {x: base[x] for x in high}
    assert sum(base[x] for x in high) / 3 > sum(base[x] for x in low) / 8 + 0.05
    at_head = summary["alignment"]["at_headline_layer"]
    assert at_head["I[parallel_align]"]["retrieval"] > 2 * at_head["P"]["retrieval"]
    assert at_head["F[parallel_align]"]["retrieval"] > at_head["F[none]"]["retrieval"]
    planted = summary["planted"]
    assert planted["gradient"]["high_above_low"]
    task = planted["alignment_tasks"]["parallel_align"]
    aligned = summary["comparisons"]["parallel_align"]["avg_non_en"]
    assert task["accuracy_ci95"] == aligned["ci95"] and task["detected"] == (aligned["ci95"][0] > 0)
    # the planted effect is found: a gain in non-English accuracy whose interval (over test items,
    # 2 seeds) lies above 0; per seed the gain was +1.1 to +9.4 points over seeds 0 to 7
    assert aligned["delta"] > 0 and aligned["ci95"][0] > 0 and task["detected"], aligned
    # the report says what the run found, as evidence on test items (2 seeds), not as significance
    text = html_lib.unescape((run_dir / "report.html").read_text(encoding="utf-8"))
    assert "Positive control" in text
    assert ("raised transfer" if task["detected"] else "did NOT clearly raise transfer") in text
    assert "evidence on these items, not a significance claim" in text


def test_tables_cover_every_language_layer_and_seed(smoke_run):
    run_dir, _ = smoke_run
    acc = pd.read_csv(run_dir / "tables" / "accuracy.csv")
    assert set(acc["lang"]) == set(XNLI_LANGUAGES) and set(acc["seed"]) == {0, 1}
    preds = pd.read_parquet(run_dir / "tables" / "predictions.parquet")
    assert len(preds) == 3 * 2 * 15 * 300  # conditions x seeds x languages x items
    recomputed = preds.groupby(["condition", "seed", "lang"])["correct"].mean()
    table = acc.set_index(["condition", "seed", "lang"])["accuracy"]
    assert recomputed.sort_index().round(10).equals(table.sort_index().round(10))
    align = pd.read_csv(run_dir / "tables" / "alignment.csv")
    pairwise = align[align["metric"] == "retrieval_centered"]
    for stage in ("pretrained", "intermediate", "final"):
        part = pairwise[pairwise["stage"] == stage]
        assert set(part["layer"]) == set(range(4)), stage  # embedding output + 3 layers
        assert set(part["lang"]) == set(XNLI_LANGUAGES) - {"en"}, stage
    metrics = set(align["metric"])
    assert {"retrieval_en_to_x", "retrieval_x_to_en", "retrieval", "retrieval_centered", "cka", "cka_debiased",
            "cosine_margin", "language_id", "language_id_low_data"} <= metrics
    # the headline CKA is debiased, for every checkpoint and layer
    debiased = align[align["metric"] == "cka_debiased"]
    assert set(debiased.groupby(["checkpoint", "layer"]).size().index) == set(
        align[align["metric"] == "cka"].groupby(["checkpoint", "layer"]).size().index)
    assert debiased["value"].notna().all()
    probes = align[align["metric"].str.startswith("language_id")]
    assert probes["chance"].to_numpy() == pytest.approx(1 / 15)


def test_report_is_self_contained_with_embedded_figures(smoke_run):
    run_dir, _ = smoke_run
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 8
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert not re.search(r'(src|href)="https?://', html)
    for heading in ("xnli-study: results", "1. Data inspection", "2. Intermediate training",
                    "3. English MultiNLI fine-tuning", "4. Cross-lingual alignment"):
        assert heading in html, heading
    assert "params_path" not in html  # parameter cells are hidden
    assert "Needs:" not in html  # notebook instructions are not part of the report
    assert not list(run_dir.rglob("checkpoint-*"))  # each unit's checkpoints go once it is done
    assert "import " not in html  # code is hidden
    assert "not findings" in html  # the profile's limits are stated


def test_summary_compares_every_condition_with_intervals(smoke_run):
    run_dir, _ = smoke_run
    summary = json.loads((run_dir / "summary.json").read_text())
    comparisons = summary["comparisons"]
    assert set(comparisons) == {"sst2", "parallel_align"}
    for by_lang in comparisons.values():
        assert set(by_lang) == set(XNLI_LANGUAGES) | {"avg", "avg_non_en"}
        for lang, row in by_lang.items():
            low, high = row["ci95"]
            assert low <= row["delta"] <= high, lang
            assert 0 <= row["p"] <= row["p_holm"] <= 1, lang
            assert row["significant"] is None  # 2 seeds: no significance claim
    assert summary["alignment"]["at_headline_layer"]["P"]["cka_debiased"] is not None
    # the deltas are what the per-example predictions say
    preds = pd.read_parquet(run_dir / "tables" / "predictions.parquet")
    by_cond = preds[preds["lang"] == "fr"].groupby("condition")["correct"].mean()
    assert comparisons["sst2"]["fr"]["delta"] == pytest.approx(by_cond["sst2"] - by_cond["none"], abs=1e-6)
    relation = summary["alignment_vs_transfer"]
    assert relation["n"] == 28 and relation["layer"] == summary["alignment"]["headline_layer"]
    if relation["spearman"] is not None:
        low, high = relation["ci95"]
        assert -1 <= low <= relation["spearman"] <= high <= 1
    for cond, by_lang in summary["xnli_accuracy_ci95"].items():
        for lang in XNLI_LANGUAGES:
            low, high = by_lang[lang]
            assert low <= summary["xnli_accuracy"][cond][lang] <= high
    # tidy per-seed tables beside the summary
    per_seed = pd.read_csv(run_dir / "tables" / "accuracy.csv")
    assert set(per_seed.columns) >= {"condition", "seed", "lang", "accuracy", "n"}
    assert len(per_seed) == 3 * 2 * 15
    assert (run_dir / "tables" / "comparisons.csv").is_file() and (run_dir / "tables" / "accuracy_ci.csv").is_file()


def test_report_reads_like_a_results_section(smoke_run):
    run_dir, _ = smoke_run
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    for heading in ("What was run", "Transfer to the other languages", "Against the baseline", "Alignment",
                    "Does alignment change predict transfer change?"):
        assert heading in html, heading
    assert "2 seeds (0, 1)" in html
    # the comparison of sst2 with the baseline is worded as its numbers say: with 2 seeds, an
    # interval over test items and no claim either way
    summary = json.loads((run_dir / "summary.json").read_text())
    sentence = narrative._significance(summary["comparisons"]["sst2"]["avg_non_en"])
    text = html_lib.unescape(html)
    assert sentence in text and sentence.endswith("over test items only)")
    assert "A significance test needs at least 3 seeds" in text
    assert "Holm-adjusted" not in text and "significant in" not in text
    assert "trained on 720 of 800 examples" in text and "MultiNLI fine-tuning on 1,500 of 1,500 examples" in text
    assert "Limits of this profile." in text and "pretrained in-process by masked language modelling" in text
    alts = re.findall(r'<img[^>]+alt="([^"]*)"', html)
    for figure in ("XNLI zero-shot accuracy (mean over seeds; whiskers: 95% bootstrap interval)",
                   "Accuracy change against the baseline", "Spearman", "Alignment over layers"):
        assert any(alt.startswith(figure) or figure in alt for alt in alts), (figure, alts)


def test_second_run_skips_complete_stages(smoke_run, project, caplog):
    run_dir, _ = smoke_run
    folder = RunFolder(run_dir)
    outputs = [folder.report_html, folder.summary, folder.table("predictions"),
               *(folder.executed(s.notebook) for s in stages.NOTEBOOK_STAGES)]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    records = {s.name: stages.read_record(run_dir, s.name)["finished_at"] for s in stages.STAGES}
    with caplog.at_level("INFO", logger="xnli_study"):
        pipeline.run_study(project / "params" / "smoke.yaml", notebooks_dir=project / "notebooks", progress=False)
    assert {p: p.stat().st_mtime_ns for p in outputs} == before
    assert {s.name: stages.read_record(run_dir, s.name)["finished_at"] for s in stages.STAGES} == records
    skipped = [r.getMessage() for r in caplog.records if "complete, skipped" in r.getMessage()]
    assert len(skipped) == len(stages.STAGES)


def test_every_notebook_runs_top_to_bottom_with_its_defaults(smoke_run, project, tmp_path):
    """As a user opening them in JupyterLab after `make study`: no injected parameters. Every stage
    is complete, so each notebook shows its results from the run folder: nothing is computed or
    written again, and the tables and figures are there."""
    run_dir, _ = smoke_run
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*") if p.is_file()}
    kernel = ensure_kernel()
    for stage in stages.NOTEBOOK_STAGES:
        source = project / "notebooks" / stage.notebook
        out = tmp_path / stage.notebook
        pm.execute_notebook(str(source), str(out), kernel_name=kernel, cwd=str(project / "notebooks"),
                            progress_bar=False)
        outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
        stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
        assert "showing its results from the run folder" in stderr and "units to run" not in stderr, stage.name
        assert any("text/html" in o.get("data", {}) for o in outputs), stage.name  # its tables
        if stage.name != "report":
            assert any("image/png" in o.get("data", {}) for o in outputs), stage.name  # and figures
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_notebook_opened_too_early_says_what_to_run(tmp_path, root):
    tree = tmp_path / "fresh"
    shutil.copytree(root / "notebooks", tree / "notebooks", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(root / "params", tree / "params")
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(tree / "notebooks" / "03_xnli_transfer.ipynb"), str(tmp_path / "o.ipynb"),
                            kernel_name=ensure_kernel(), cwd=str(tree / "notebooks"),
                            progress_bar=False)
    assert err.value.ename == "StageNotReadyError"
    assert "Run first: xnli-study run --params" in err.value.evalue
    # in the notebook: the message, not a traceback wall
    errors = [o for c in nbformat.read(tmp_path / "o.ipynb", as_version=4).cells if c.cell_type == "code"
              for o in c.outputs if o.get("output_type") == "error"]
    assert len(errors) == 1
    shown = "\n".join(errors[0]["traceback"])
    assert "Run first: xnli-study run --params" in shown and "Traceback" not in shown and "File " not in shown
    assert len(shown.splitlines()) <= 3


def test_failed_stage_names_the_stage_and_its_notebook(tmp_path, root):
    tree = tmp_path / "broken"
    shutil.copytree(root / "notebooks", tree / "notebooks", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(root / "params", tree / "params")
    text = (tree / "params" / "smoke.yaml").read_text()
    # a local task file that does not exist: stage 1 fails while loading the task
    # a malformed local task file: the data stage fails while reading it
    (tree / "params" / "bad.tsv").write_text("no header here\n")
    text = text.replace("sst2: {source: sample, max_examples: 800}", "sst2: {source: local, path: bad.tsv}")
    (tree / "params" / "smoke.yaml").write_text(text)
    with pytest.raises(pipeline.StageFailed) as err:
        pipeline.run_study(tree / "params" / "smoke.yaml", notebooks_dir=tree / "notebooks", progress=False)
    assert err.value.stage == "data"
    assert err.value.notebook.is_file()
    assert "bad.tsv" in str(err.value) and str(err.value.notebook) in str(err.value)
    manifest = json.loads((tree / "outputs" / "smoke" / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "failed"


def test_a_failed_render_is_retried_by_the_next_run(smoke_run, project, tmp_path, monkeypatch):
    run_dir, _ = smoke_run
    folder = RunFolder(tmp_path / "copy")
    shutil.copytree(run_dir, folder.root)
    folder.report_html.unlink()  # no HTML: rendering is not done, whatever its record says
    notebooks = {s.notebook: folder.executed(s.notebook).stat().st_mtime_ns for s in stages.NOTEBOOK_STAGES}
    params, nb_dir = project / "params" / "smoke.yaml", project / "notebooks"

    def broken(run_dir):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "build_report", broken)
    with pytest.raises(pipeline.StageFailed, match="stage 'render' failed: RuntimeError: disk full"):
        pipeline.run_study(params, out=folder.root, notebooks_dir=nb_dir, progress=False)
    assert not folder.record("render").exists() and not folder.report_html.exists()
    manifest = json.loads(folder.manifest.read_text())
    assert manifest["stages"]["render"]["status"] == "failed"
    assert manifest["stages"]["report"]["status"] == "done"
    monkeypatch.undo()
    pipeline.run_study(params, out=folder.root, notebooks_dir=nb_dir, progress=False)
    config = stages.at_run_dir(load_params(params), folder.root)
    assert folder.report_html.is_file() and stages.stage_complete(folder.root, "render", config)
    assert json.loads(folder.manifest.read_text())["stages"]["render"]["status"] == "done"
    # only the render ran again: no notebook was executed
    assert {n: folder.executed(n).stat().st_mtime_ns for n in notebooks} == notebooks
