"""The rendered report in a real browser (headless Chromium): every image loads, no console
error, the sections are there; and text from datasets is shown as text, never run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from conftest import use_shared_cache
from xnli_study import pipeline

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT_PAYLOAD = "<script>window.__xss = 'script'</script>"
IMG_PAYLOAD = "<img src=x onerror=\"window.__xss = 'img'\">"
# the same markup in the params' own prose
PARAMS_DESCRIPTION = "Lab copy <img src=x onerror=\"window.__xss = 'description'\">"
PARAMS_LIMITS = "Read with care <script>window.__xss = 'limits'</script>"
# and in names the params give: the run (a folder name), the encoder's folder, a data file
RUN_NAME = "hostile <img src=x onerror=window.__xss=1>"
ENCODER_FOLDER = "encoder <img src=x onerror=window.__xss=2>"
MNLI_FILE = "mnli <img src=x onerror=window.__xss=3>.jsonl"


def open_report(browser, path: Path):
    """Open ``path`` from disk; return the page and the console errors and page errors seen."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors


def test_smoke_report_renders_in_chromium(browser, smoke_run):
    run_dir, _ = smoke_run
    page, errors = open_report(browser, run_dir / "report.html")
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
    assert len(images) >= 10
    broken = [alt for complete, width, alt in images if not complete or width <= 0]
    assert not broken, f"images that did not load: {broken}"
    assert all(alt and alt != "figure" for _, _, alt in images)  # each figure has a description
    headings = page.eval_on_selector_all("h1, h2", "els => els.map(e => e.textContent.replace('¶', '').trim())")
    for expected in ("xnli-study: results", "1. Data inspection", "2. Intermediate training",
                     "3. English MultiNLI fine-tuning and zero-shot XNLI transfer",
                     "4. Cross-lingual alignment"):
        assert any(h.startswith(expected) for h in headings), (expected, headings)
    assert errors == []
    shot = run_dir / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, root, shared_cache, tiny):
    """A small study whose XNLI sentences carry markup (a <script> and an <img onerror>), as do the
    params' description and limits, the run's name, the encoder's folder and a data file's name."""
    from xnli_study.sample import parallel_folder, write_sample

    tree = tmp_path_factory.mktemp("hostile")
    tokenizer, encoder = tiny
    encoder.save_pretrained(tree / ENCODER_FOLDER)
    tokenizer.save_pretrained(tree / ENCODER_FOLDER)
    shutil.copytree(root / "notebooks", tree / "notebooks", ignore=shutil.ignore_patterns("*.py"))
    data = write_sample(tree / "data", test_items=60, dev_items=30, mnli_examples=300, sst2_examples=200)
    for split in ("dev", "test"):
        path = data / "xnli" / f"xnli.{split}.tsv"
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        header = rows[0]
        first = rows[1][header.index("pairID")]
        for row in rows[1:]:
            if row[header.index("pairID")] == first and row[header.index("language")] == "en":
                row[header.index("sentence1")] = f"Anna reads. {SCRIPT_PAYLOAD}"
                row[header.index("sentence2")] = f"Anna sees {IMG_PAYLOAD} a book."
        path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    mnli = shutil.copy(data / "mnli" / "train.jsonl", data / "mnli" / MNLI_FILE)
    params = tree / "params"
    params.mkdir()
    smoke = (root / "params" / "smoke.yaml").read_text()
    text = (smoke.replace("run_name: smoke", f"run_name: {json.dumps(RUN_NAME)}")
            .replace("  name: tiny\n", f"  name: {json.dumps(str(tree / ENCODER_FOLDER))}\n")
            .replace("limits: >-\n", f"limits: >-\n  {PARAMS_LIMITS}\n")
            .replace("description: >-\n", f"description: >-\n  {PARAMS_DESCRIPTION}\n")
            .replace("seeds: [0, 1]", "seeds: [0]")
            .replace("conditions: [none, sst2, parallel_align]", "conditions: [none, sst2]")
            .replace("  source: sample\n  eval_split: test", f"  source: official\n  path: {data / 'xnli'}\n"
                     "  eval_split: test")
            .replace("mnli:\n  source: sample", f"mnli:\n  source: local\n  path: {json.dumps(str(mnli))}")
            .replace("sst2: {source: sample, max_examples: 800}",
                     f"sst2: {{source: local, path: {data / 'sst2' / 'train.tsv'}, max_examples: 200}}")
            .replace("parallel_align: {source: sample, max_examples: 1000",
                     f"parallel_align: {{source: local, path: {parallel_folder(data)}, max_examples: 300"))
    assert "conditions: [none, sst2]" in text and text.count("source: official") == 1 and "source: local" in text and ENCODER_FOLDER in text
    (params / "hostile.yaml").write_text(text)
    use_shared_cache(params / "hostile.yaml", shared_cache)
    return pipeline.run_study(params / "hostile.yaml", notebooks_dir=tree / "notebooks", progress=False)


def test_dataset_markup_is_shown_as_text_and_never_runs(browser, hostile_run):
    page, errors = open_report(browser, hostile_run / "report.html")
    assert page.evaluate("() => window.__xss === undefined")
    text = page.inner_text("body")
    assert SCRIPT_PAYLOAD in text and IMG_PAYLOAD in text  # visible, as typed
    assert PARAMS_LIMITS in text and PARAMS_DESCRIPTION in text
    for name in (RUN_NAME, ENCODER_FOLDER, MNLI_FILE):
        assert name in text, name
    # no element came from the payloads: the only images are the report's own figures
    sources = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src'))")
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    scripts = page.eval_on_selector_all("script", "els => els.map(e => e.textContent)")
    assert not any("__xss" in s for s in scripts)
    assert errors == []
    page.close()


def test_one_seed_makes_no_significance_claim(hostile_run):
    """The hostile run has one seed: significant is null everywhere and the report claims nothing."""
    import json

    summary = json.loads((hostile_run / "summary.json").read_text())
    rows = [row for by_lang in summary["comparisons"].values() for row in by_lang.values()]
    assert rows and all(row["significant"] is None for row in rows)
    html = (hostile_run / "report.html").read_text(encoding="utf-8")
    assert "Holm-adjusted" not in html and "A significance test needs at least 3 seeds" in html
    assert "over test items only" in html
