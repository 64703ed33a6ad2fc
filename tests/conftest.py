"""Shared fixtures: the project root, the smoke params, a tiny model built in-process."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

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
