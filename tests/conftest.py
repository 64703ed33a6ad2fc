"""Shared fixtures: the project root, the smoke params, a tiny model built in-process."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def shared_data(request) -> Path:
    """The real data files; only for tests marked ``real`` (``make test-fast`` leaves those out)."""
    if request.node.get_closest_marker("real") is None:
        pytest.fail(f"{request.node.nodeid} reads ../shared/data: mark it @pytest.mark.real")
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (tests read it from ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from xnli_study.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "sample", test_items=60, dev_items=30,
                        mnli_examples=300, sst2_examples=200)


@pytest.fixture(scope="session")
def tiny(sample_dir):
    """(tokenizer, encoder) built in-process: a WordPiece tokenizer on the sample, a 2-layer BERT."""
    from xnli_study.config import TinyEncoderConfig
    from xnli_study.data import read_xnli_official
    from xnli_study.languages import XNLI_LANGUAGES
    from xnli_study.models import build_tiny_encoder, build_tiny_tokenizer

    frame = read_xnli_official(sample_dir / "xnli", split="dev", languages=XNLI_LANGUAGES)
    tokenizer = build_tiny_tokenizer(list(frame["premise"]) + list(frame["hypothesis"]), vocab_size=800)
    settings = TinyEncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model = build_tiny_encoder(settings, vocab_size=len(tokenizer), seed=0).eval()
    return tokenizer, model


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole pytest run: the pretrained tiny P is built once and every
    smoke-derived run reuses it (its key covers its settings)."""
    return tmp_path_factory.mktemp("shared-cache")


def use_shared_cache(params: Path, cache: Path) -> None:
    """Point a params file at the session's shared cache."""
    params.write_text(params.read_text(encoding="utf-8") + f"\ncache_dir: {cache}\n", encoding="utf-8")


@pytest.fixture(scope="session")
def project(tmp_path_factory, root, shared_cache):
    """A copy of notebooks/ and params/ in a temporary folder: the run lands in its outputs/."""
    tree = tmp_path_factory.mktemp("project")
    shutil.copytree(root / "notebooks", tree / "notebooks", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(root / "params", tree / "params")
    use_shared_cache(tree / "params" / "smoke.yaml", shared_cache)
    return tree


@pytest.fixture(scope="session")
def smoke_run(project):
    """The smoke study run once through papermill, as `make study` runs it: (run folder, seconds)."""
    from xnli_study import pipeline

    started = time.perf_counter()
    run_dir = pipeline.run_study(project / "params" / "smoke.yaml", notebooks_dir=project / "notebooks",
                                 progress=False)
    return run_dir, time.perf_counter() - started


@pytest.fixture
def smoke_yaml(root) -> Path:
    return root / "params" / "smoke.yaml"


def write_params(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal_params(smoke_yaml: Path, folder: Path, cache: Path) -> Path:
    """The baseline and one task, one seed, a few hundred examples, checkpoints every few steps."""
    data = yaml.safe_load(smoke_yaml.read_text())
    data.update(output_dir=str(folder / "outputs"), cache_dir=str(cache), seeds=[0], run_name="minimal",
                conditions=["none", "sst2"], languages=["en", "fr"])
    data["tasks"] = {"sst2": {"source": "sample", "max_examples": 200}}
    data["xnli"]["max_items"] = 60  # the sample (and so the pretrained P) stays the smoke profile's
    data["mnli"]["max_examples"] = 300
    data["training"]["intermediate"].update(epochs=1, checkpoint_every=2)
    data["training"]["mnli"].update(epochs=1, evals_per_epoch=3, checkpoint_every="eval")
    data["alignment"].update(max_sentences=30, language_id_sentences=20)
    data["stats"] = {"resamples": 200}
    data["distributed"] = {"unit_processes": 1}  # units in the stage's process, where the kill points are
    path = folder / "minimal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def minimal_run(tmp_path_factory, shared_cache):
    """The minimal profile (:func:`minimal_params`) run once, uninterrupted and unsharded: what
    the tests that kill, shard or extend runs compare with. ``(params, run folder)``."""
    from xnli_study import pipeline

    folder = tmp_path_factory.mktemp("minimal")
    params = minimal_params(ROOT / "params" / "smoke.yaml", folder, shared_cache)
    run_dir = pipeline.run_study(params, out=folder / "outputs" / "clean", progress=False)
    return params, run_dir


#: columns that time the work, not results
TIMINGS = {"seconds"}


def tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every tidy table of a run (CSV and Parquet), without the columns that time the work; the
    LaTeX tables as text (key ``<name>.tex``)."""
    found = {}
    for path in sorted((run_dir / "tables").iterdir()):
        if path.suffix == ".tex":
            found[path.name] = pd.DataFrame({"text": path.read_text(encoding="utf-8").splitlines()})
            continue
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        found[path.name] = frame.drop(columns=[c for c in frame.columns if c in TIMINGS])
    return found


def summary(run_dir: Path) -> dict:
    data = json.loads((run_dir / "summary.json").read_text())
    data.pop("run_name", None)
    return data


CHROMIUM = os.environ.get("XNLI_STUDY_CHROMIUM", "/usr/bin/chromium")
# flags for a sandboxed, offline machine: no background connections, no GPU
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package) driven by playwright, for the report and JupyterLab tests."""
    if not Path(CHROMIUM).is_file():
        message = f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()
