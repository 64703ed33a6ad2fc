"""A catalogue of malformed input: each case runs one command and must print exactly one error
line (no traceback) naming the culprit and the fix, exit 2 for bad params and 1 for the rest, and
leave no stage or unit marked complete.

Each case starts from a small profile that reads local copies of the sample's files
(``data/xnli``, ``data/mnli/train.jsonl``, ``data/sst2/train.tsv``) and changes one thing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from xnli_study import hub, models, preflight
from xnli_study.cli import main
from xnli_study.runfolder import RUN_FOLDER_VERSION

pytestmark = pytest.mark.slow


@dataclass
class Case:
    id: str
    command: str  # "run" or "check" (or "report")
    code: int
    fragment: str  # a piece of the one error line
    edit: Callable[[dict, Path], None] = lambda params, folder: None
    text: str | None = None  # the params file's text, written as is (for syntax errors)
    args: tuple[str, ...] = ()
    params: bool = True  # pass --params
    tags: tuple[str, ...] = ()


def base_params(folder: Path, cache: Path) -> dict:
    return {
        "profile": "bad-input", "run_name": "r", "output_dir": str(folder / "outputs"), "cache_dir": str(cache),
        "seeds": [0], "device": "cpu", "languages": ["en", "fr", "de"],
        "encoder": {"name": "tiny", "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                             "intermediate_size": 64, "vocab_size": 800, "pretrain_epochs": 1}},
        "sample": {"corpus_sentences": 30, "parallel_sentences": 10},
        "xnli": {"source": "official", "path": "data/xnli", "eval_split": "test"},
        "mnli": {"source": "local", "path": "data/mnli/train.jsonl", "max_examples": 100},
        "conditions": ["none", "sst2"],
        "tasks": {"sst2": {"source": "local", "path": "data/sst2/train.tsv", "max_examples": 100}},
        "training": {"intermediate": {"epochs": 1, "max_length": 32}, "mnli": {"epochs": 1, "max_length": 32}},
        "alignment": {"max_sentences": 20, "language_id_sentences": 10},
    }


# ---- helpers that change one thing -------------------------------------------------------------
def setting(path: str, value) -> Callable[[dict, Path], None]:
    def edit(params, folder):
        *parents, last = path.split(".")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return edit


def dropping(path: str) -> Callable[[dict, Path], None]:
    def edit(params, folder):
        *parents, last = path.split(".")
        node = params
        for key in parents:
            node = node[key]
        del node[last]
    return edit


def both(*edits) -> Callable[[dict, Path], None]:
    def edit(params, folder):
        for e in edits:
            e(params, folder)
    return edit


def rewrite(rel: str, change: Callable[[str], str]) -> Callable[[dict, Path], None]:
    def edit(params, folder):
        path = folder / rel
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    return edit


def write_bytes(rel: str, data: bytes) -> Callable[[dict, Path], None]:
    def edit(params, folder):
        (folder / rel).write_bytes(data)
    return edit


def model_folder(kind: str) -> Callable[[dict, Path], None]:
    """A model folder with something wrong with it, as ``encoder.name``."""
    def edit(params, folder):
        from transformers import BertConfig

        target = folder / "model"
        target.mkdir()
        config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32).to_dict()
        if kind == "custom-code":
            config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
            (target / "modeling_evil.py").write_text("raise SystemExit('custom code ran')\n")
            (target / "model.safetensors").write_bytes(b"")
        if kind == "pickle":
            (target / "pytorch_model.bin").write_bytes(b"not loaded")
        if kind == "vocab":
            (target / "model.safetensors").write_bytes(b"")
            (target / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(80)) + "\n")
        (target / "config.json").write_text(json.dumps(config))
        params["encoder"] = {"name": "model"}
    return edit


def read_only(folder: Path) -> str:
    """A folder this process cannot write into: a read-only one, or for root (who writes
    anywhere), one in the kernel's read-only /proc/sys."""
    if os.geteuid() != 0:
        (folder / "ro").mkdir(mode=0o500)
        return str(folder / "ro" / "outputs")
    if os.access("/proc/sys", os.W_OK):
        pytest.skip("no folder here is closed to root")
    return "/proc/sys/xnli-study-outputs"


def old_run_folder(params, folder):
    run = folder / "outputs" / "r"
    (run / "stages").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"stages": {}}))  # no run_folder_version: version 1


def first_rows(n: int):
    return lambda text: "\n".join(text.splitlines()[:n]) + "\n"


XNLI_TEST = "data/xnli/xnli.test.tsv"
MNLI = "data/mnli/train.jsonl"
SST2 = "data/sst2/train.tsv"

CASES = [
    # ---- params -------------------------------------------------------------------------------
    Case("params-missing", "check", 2, "not found", params=False, args=("--params", "nowhere.yaml")),
    Case("params-yaml-syntax", "check", 2, "not valid YAML", text="seeds: [0, 1\nprofile: x\n"),
    Case("params-empty", "check", 2, "the file is empty", text=""),
    Case("params-a-list", "check", 2, "expected a mapping", text="- seeds\n- profile\n"),
    Case("unknown-top-key", "check", 2, "learning_rate", setting("learning_rate", 0.1)),
    Case("unknown-encoder-key", "check", 2, "encoder.nam", setting("encoder.nam", "x")),
    Case("unknown-tiny-key", "check", 2, "encoder.tiny.layers", setting("encoder.tiny.layers", 2)),
    Case("unknown-training-key", "check", 2, "training.mnli.lr", setting("training.mnli.lr", 0.1)),
    Case("unknown-task-key", "check", 2, "tasks.sst2.file", setting("tasks.sst2.file", "x")),
    Case("unknown-alignment-key", "check", 2, "alignment.layer", setting("alignment.layer", 2)),
    Case("seeds-wrong-type", "check", 2, "seeds", setting("seeds", "zero")),
    Case("epochs-wrong-type", "check", 2, "training.mnli.epochs", setting("training.mnli.epochs", "many")),
    Case("learning-rate-zero", "check", 2, "training.mnli.learning_rate", setting("training.mnli.learning_rate", 0)),
    Case("learning-rate-negative", "check", 2, "training.intermediate.learning_rate",
         setting("training.intermediate.learning_rate", -1e-5)),
    Case("epochs-zero", "check", 2, "training.mnli.epochs", setting("training.mnli.epochs", 0)),
    Case("batch-size-zero", "check", 2, "training.mnli.batch_size", setting("training.mnli.batch_size", 0)),
    Case("max-items-zero", "check", 2, "xnli.max_items", setting("xnli.max_items", 0)),
    Case("max-examples-zero", "check", 2, "mnli.max_examples", setting("mnli.max_examples", 0)),
    Case("seeds-empty", "check", 2, "seeds", setting("seeds", [])),
    Case("unknown-language", "check", 2, "xx", setting("languages", ["en", "xx"])),
    Case("unknown-task", "check", 2, "unknown task", setting("conditions", ["none", "sst3"])),
    Case("duplicate-conditions", "check", 2, "'sst2' more than once", setting("conditions", ["none", "sst2", "sst2"])),
    Case("unknown-device", "check", 2, "device", setting("device", "tpu")),
    Case("headline-layer-too-deep", "check", 2, "alignment.headline_layer: 9", setting("alignment.headline_layer", 9)),
    Case("anchor-share-too-high", "check", 2, "0.9", setting("sample.anchor_share", 0.9)),
    Case("checkpoint-every-zero", "check", 2, "checkpoint_every", setting("training.intermediate.checkpoint_every", 0)),
    Case("mnli-checkpoint-steps", "check", 2, "mnli.checkpoint_every",
         setting("training.mnli.checkpoint_every", 50)),
    Case("freeze-beyond-depth", "check", 2, "training.mnli.freeze_layers: 7",
         setting("training.mnli.freeze_layers", 7)),
    Case("freeze-above-aligned-layer", "check", 2, "nothing would train",
         both(setting("conditions", ["none", "parallel_align"]),
              setting("tasks", {"parallel_align": {"source": "local", "path": "data/xnli", "layer": 1}}),
              setting("training.intermediate.freeze_layers", 2))),
    Case("checkpoint-every-true", "check", 2, "true is not an interval",
         setting("training.intermediate.checkpoint_every", True)),
    Case("processes-zero", "check", 2, "distributed.processes", setting("distributed.processes", 0)),
    Case("accelerate-config-missing", "check", 2, "accelerate config --config_file",
         setting("distributed.accelerate_config", "nowhere.yaml")),
    Case("accelerate-config-disagrees", "check", 2, "has num_processes: 8",
         lambda p, f: ((f / "acc.yaml").write_text("distributed_type: MULTI_GPU\nnum_processes: 8\n"),
                       p.update(distributed={"processes": 2, "accelerate_config": str(f / "acc.yaml")}))),
    Case("shard-out-of-range", "run", 2, "give I/N with 0 <= I < N", args=("--shard", "4/4")),
    Case("output-dir-a-file", "run", 2, "is a file",
         lambda p, f: ((f / "out-file").write_text("x"), p.update(output_dir=str(f / "out-file")))),
    Case("output-dir-not-writable", "run", 2, "cannot be written", lambda p, f: p.update(output_dir=read_only(f))),
    Case("xtreme-test-without-labels", "check", 2, "labels_from",
         setting("xnli", {"source": "xtreme", "path": "data/xnli", "eval_split": "test"})),
    Case("relative-path-params-folder", "check", 2, "relative to the params file's folder",
         setting("mnli.path", "elsewhere/train.jsonl")),
    Case("relative-path-data-dir", "check", 2, "relative to data_dir",
         both(setting("data_dir", "data"), setting("xnli.path", "xnli"), setting("tasks.sst2.path", "sst2/train.tsv"),
              setting("mnli.path", "mnli/none.jsonl"))),
    # ---- data files ---------------------------------------------------------------------------
    Case("xnli-folder-missing", "run", 2, "xnli.path", setting("xnli.path", "data/no-xnli")),
    Case("xnli-file-missing", "run", 1, "xnli.test.tsv",
         lambda p, f: (f / XNLI_TEST).unlink()),
    Case("xnli-file-empty", "run", 1, "xnli.test.tsv", write_bytes(XNLI_TEST, b"")),
    Case("xnli-language-absent", "run", 1, "de",
         rewrite(XNLI_TEST, lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("de\t")) + "\n")),
    Case("xnli-not-utf8", "run", 1, "not UTF-8",
         lambda p, f: (f / XNLI_TEST).write_bytes((f / XNLI_TEST).read_bytes() + b"fr\t\xff\xfe\n")),
    Case("xnli-unknown-label", "run", 1, "unknown label 'maybe'",
         rewrite(XNLI_TEST, lambda t: t.replace("\tentailment\t", "\tmaybe\t", 1))),
    Case("xnli-not-parallel", "run", 1, "not parallel",
         rewrite(XNLI_TEST, lambda t: "\n".join(l for i, l in enumerate(t.splitlines())
                                                if not (l.startswith("fr\t") and i % 7 == 0)) + "\n")),
    Case("mnli-not-json", "run", 1, "JSON", rewrite(MNLI, lambda t: t.replace("\n", "\n{oops\n", 1))),
    Case("mnli-no-gold-labels", "run", 1, "no labelled pairs",
         rewrite(MNLI, lambda t: "\n".join(json.dumps({**json.loads(l), "label": "-"})
                                           for l in t.splitlines()) + "\n")),
    Case("mnli-unknown-label", "run", 1, "unknown label 'yes'",
         rewrite(MNLI, lambda t: t.replace('"label": "neutral"', '"label": "yes"', 1))),
    Case("sst2-wrong-columns", "run", 1, "expected a header",
         rewrite(SST2, lambda t: t.replace("sentence\tlabel", "text\tclass", 1))),
    Case("sst2-glue-test-file", "run", 1, "no label column",
         write_bytes(SST2, b"index\tsentence\n0\tit is good .\n1\tit is bad .\n")),
    Case("sst2-not-utf8", "run", 1, "tasks.sst2.path",
         lambda p, f: (f / SST2).write_bytes((f / SST2).read_bytes() + b"\xc3\x28 bad\t1\n")),
    Case("sst2-file-missing", "check", 2, "tasks.sst2.path", lambda p, f: (f / SST2).unlink()),
    # ---- models -------------------------------------------------------------------------------
    Case("model-folder-missing", "check", 2, "does not exist", setting("encoder", {"name": "./no-model"})),
    Case("model-without-weights", "run", 2, "holds no weights", model_folder("empty")),
    Case("model-pickle-only", "run", 2, "allow_pickle", model_folder("pickle")),
    Case("model-custom-code", "run", 2, "trust_remote_code", model_folder("custom-code")),
    Case("model-tokenizer-mismatch", "run", 2, "belongs to another model", model_folder("vocab")),
    Case("hub-model-offline", "run", 1, "hub", setting("encoder", {"name": "FacebookAI/xlm-roberta-base"}),
         tags=("offline",)),
    # ---- runs ---------------------------------------------------------------------------------
    Case("unknown-stage", "run", 2, "invalid choice: 'trainig'", args=("--stages", "trainig")),
    Case("stage-inputs-missing", "run", 1, "need data", args=("--stages", "transfer")),
    Case("old-run-folder", "run", 1, "another version of xnli-study", old_run_folder),
    Case("report-no-run-folder", "report", 1, "no run folder", params=False, args=("--run", "nowhere")),
]


@pytest.fixture(scope="module")
def files(sample_dir, tmp_path_factory):
    """The sample's XNLI, MultiNLI and SST-2 files, copied once."""
    folder = tmp_path_factory.mktemp("bad-input-data")
    shutil.copytree(sample_dir / "xnli", folder / "xnli")
    shutil.copytree(sample_dir / "mnli", folder / "mnli")
    shutil.copytree(sample_dir / "sst2", folder / "sst2")
    return folder


def test_the_catalogue_is_large_and_names_each_case_once():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_the_exit_code_and_nothing_marked_done(case, files, shared_cache, tmp_path,
                                                                        monkeypatch, capsys):
    shutil.copytree(files, tmp_path / "data")
    params = base_params(tmp_path, shared_cache)
    case.edit(params, tmp_path)
    path = tmp_path / "p.yaml"
    path.write_text(case.text if case.text is not None else yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    if "offline" in case.tags:  # as on this machine: the hub cannot be reached
        monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
        monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: False)
        monkeypatch.setattr(preflight, "hub_reachable", lambda *a, **k: False)
    argv = [case.command] + (["--params", str(path)] if case.params else []) + list(case.args)
    if case.command == "run":
        argv.append("--quiet")
    started = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert code == case.code, f"{case.id}: exit {code}, stderr:\n{err}"
    assert len(errors) == 1, f"{case.id}: expected one error line, got:\n{err}"
    # the error is the last thing printed: one line, and for a stage that failed in its notebook,
    # the executed notebook that shows the details
    tail = lines[lines.index(errors[0]):]
    if "failed:" in errors[0]:
        assert len(tail) == 2 and tail[1].startswith("  the executed notebook shows the error: "), tail
        assert Path(tail[1].split(": ", 1)[1]).is_file()
    else:
        assert len(tail) == 1, f"{case.id}: {tail}"
    assert "Traceback" not in err, f"{case.id}: {err}"
    assert case.fragment in err, f"{case.id}: {err!r} lacks {case.fragment!r}"
    if "offline" in case.tags:
        assert seconds < 10, f"{case.id}: {seconds:.1f} s"
    outputs = tmp_path / "outputs"
    marked = [p for p in outputs.rglob("*.json") if p.parent.name == "stages" or p.name == "record.json"]
    marked = [p for p in marked if case.id != "old-run-folder"]
    assert not marked, f"{case.id}: marked complete: {marked}"
    assert "custom code ran" not in err
