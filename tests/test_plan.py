"""``xnli-study plan`` and ``check`` on every profile, offline; the cost model's arithmetic."""

import json
from pathlib import Path

import pytest

from xnli_study import plan as planning
from xnli_study.cli import main
from xnli_study.config import load_params, parse_params
from xnli_study.errors import ParamsError
from xnli_study.preflight import check_all
from xnli_study.runfolder import throughput_file
from xnli_study.training import schedule

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "params").glob("*.yaml"))


def test_the_paper_scale_profiles_exist():
    names = {p.stem for p in PROFILES}
    assert {"smoke", "offline-real", "quick", "full", "full-mbert"} <= names
    full = load_params(ROOT / "params" / "full.yaml")
    assert full.encoder.name == "FacebookAI/xlm-roberta-base" and len(full.seeds) == 3
    assert set(full.conditions) == {"none", "anli_plus", "mnli", "qqp", "squad", "squad_v2", "hellaswag",
                                    "commonsenseqa", "cosmosqa", "parallel_align"}
    assert full.mnli.max_examples is None and full.xnli.eval_split == "test"
    assert all(full.task_data(t).max_examples is None for t in full.conditions if t not in ("none", "parallel_align"))
    assert full.training.mnli.effective_batch() == 32
    mbert = load_params(ROOT / "params" / "full-mbert.yaml")
    assert mbert.encoder.name == "google-bert/bert-base-multilingual-cased"
    assert mbert.model_dump(exclude={"encoder", "profile", "run_name", "description", "base_dir"}) == \
        full.model_dump(exclude={"encoder", "profile", "run_name", "description", "base_dir"})
    quick = load_params(ROOT / "params" / "quick.yaml")
    assert quick.seeds == [0] and "test items only" in quick.limits


def offline(monkeypatch):
    """The hub unreachable, whatever the network of the machine running the test."""
    from xnli_study import models, preflight

    monkeypatch.setattr(preflight, "hub_reachable", lambda *a: False)
    monkeypatch.setattr(models, "hub_reachable", lambda *a: False)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_plan_and_check_accept_every_profile_offline(profile, capsys, monkeypatch):
    offline(monkeypatch)
    assert main(["plan", "--params", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "GPU-hours" in out and "peak GPU memory" in out and "left after the run" in out
    if load_params(profile).data_dir and not SHARED_DATA.is_dir():
        pytest.skip(f"{profile.name} reads {SHARED_DATA}, which is absent (tests read it from ../shared/data)")
    assert main(["check", "--params", str(profile)]) == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out
    config = load_params(profile)
    if any(s.source == "hub" for s in [config.xnli, config.mnli]):
        assert "hub cannot be reached" in captured.err  # said, not failed


def test_parameter_counts_of_the_known_encoders():
    xlmr = planning.count_parameters(planning.architecture_config("xlm-roberta-base"), "x", "")
    assert 277e6 < xlmr.total < 280e6  # 278M (the hub's model card)
    assert 85e6 < xlmr.non_embedding < 86.5e6  # STUDY.md section 9: 85M without embeddings
    mbert = planning.count_parameters(planning.architecture_config("bert-base-multilingual-cased"), "m", "")
    assert 177e6 < mbert.total < 179e6
    large = planning.count_parameters(planning.architecture_config("xlm-roberta-large"), "l", "")
    assert 559e6 < large.total < 562e6 and large.layers == 24


def test_one_mnli_epoch_of_xlmr_base_costs_what_study_md_says():
    """STUDY.md section 9: one epoch of MultiNLI on XLM-R base is about 9e15 FLOPs (6 N T)."""
    config = load_params(ROOT / "params" / "full.yaml")
    result = planning.make_plan(config)
    unit = result.units[(result.units["stage"] == "mnli + xnli")].iloc[0]
    real_tokens_per_epoch = unit["train_tokens"] / unit["epochs"] / planning.PADDING_FACTOR
    assert real_tokens_per_epoch == pytest.approx(392_702 * 45)
    assert 6 * result.arch.non_embedding * real_tokens_per_epoch == pytest.approx(9e15, rel=0.05)
    # the unit's FLOPs: 6 N T plus attention (2 x layers x length x hidden, x3), on padded tokens,
    # plus inference on dev and test (2 N T plus attention once)
    length = 45
    train = unit["train_tokens"] * (6 * result.arch.non_embedding + 3 * 2 * 12 * length * 768)
    infer = unit["inference_tokens"] * (2 * result.arch.non_embedding + 2 * 12 * length * 768)
    assert unit["flops"] == pytest.approx(train + infer, rel=0.02)
    assert unit["optimizer_steps"] == schedule(392_702, config.training.mnli).total_steps
    # time at the given throughput: training tokens / rate, inference at 3x the rate
    timed = planning.make_plan(config, tokens_per_second=100_000)
    u = timed.units.iloc[0]
    assert u["seconds"] == pytest.approx(u["train_tokens"] / 1e5 + u["inference_tokens"] / 3e5)
    assert timed.gpu_hours == pytest.approx(timed.units["seconds"].sum() / 3600)


def test_devices_divide_the_steps_and_memory_follows_the_batch():
    config = load_params(ROOT / "params" / "full.yaml")
    one = planning.make_plan(config).units
    eight = planning.make_plan(config, world_size=8).units
    first = one["stage"] == "mnli + xnli"
    assert (eight.loc[first, "optimizer_steps"] * 8 - one.loc[first, "optimizer_steps"]).abs().max() <= 16
    bigger = config.model_copy(update={"training": config.training.model_copy(update={
        "mnli": config.training.mnli.model_copy(update={"batch_size": 128})})})
    assert planning.make_plan(bigger).units.loc[first, "peak_memory_gb"].iloc[0] > \
        one.loc[first, "peak_memory_gb"].iloc[0] + 1


def test_save_models_changes_what_is_left_on_disk():
    config = load_params(ROOT / "params" / "full.yaml")
    left = {}
    for keep in ("all", "encoders", "none"):
        c = config.model_copy(update={"training": config.training.model_copy(update={"save_models": keep})})
        disk = planning.make_plan(c).disk.set_index("what")
        left[keep] = disk["kept_bytes"]
    encoder = 4 * planning.architecture(config).total
    assert left["all"]["final NLI models F_t"] == 30 * encoder
    assert left["encoders"]["final NLI models F_t"] == 0
    assert left["encoders"]["intermediate encoders I_t"] == 27 * encoder
    assert left["none"]["intermediate encoders I_t"] == 0


def test_plan_uses_the_benchmark_measurement_when_there_is_one(tmp_path):
    config = parse_params({"profile": "p", "run_name": "r", "output_dir": str(tmp_path)}, base_dir=tmp_path)
    arch = planning.architecture(config)
    default = planning.make_plan(config)
    assert "H100" in default.throughput_source
    throughput_file(tmp_path).parent.mkdir()
    throughput_file(tmp_path).write_text(json.dumps(
        {planning.throughput_key(arch.layers, arch.hidden, "cuda"): {"train_tokens_per_second": 1234.0}}))
    measured = planning.make_plan(config)
    assert measured.tokens_per_second == 1234.0 and "measured" in measured.throughput_source
    # a CPU profile does not take a GPU's rate
    on_cpu = planning.make_plan(config.model_copy(update={"device": "cpu"}))
    assert "H100" in on_cpu.throughput_source


def test_check_lists_every_problem_at_once(tmp_path, monkeypatch):
    offline(monkeypatch)
    config = parse_params({"profile": "p", "run_name": "r", "mnli": {"source": "local", "path": "missing.jsonl"},
                           "xnli": {"source": "official", "path": "no-folder"},
                           "conditions": ["none", "parallel_align"],
                           "tasks": {"parallel_align": {"source": "local", "path": "no-mt-folder", "layer": 7}},
                           "alignment": {"headline_layer": 9}, "encoder": {"tiny": {"num_layers": 3}}},
                          base_dir=tmp_path)
    with pytest.raises(ParamsError) as err:
        check_all(config)
    lines = str(err.value).splitlines()
    assert lines[0] == "5 errors:"
    for culprit in ("xnli.path: folder", "mnli.path: file", "tasks.parallel_align.path: folder",
                    "tasks.parallel_align.layer: 7 is outside 0..3",
                    "alignment.headline_layer: 9 is outside 0..3"):
        assert sum(culprit in line for line in lines[1:]) == 1, culprit


def test_check_notes_what_the_machine_lacks_and_still_passes(tmp_path, monkeypatch):
    offline(monkeypatch)
    config = parse_params({"profile": "p", "run_name": "r", "device": "cuda", "xnli": {"source": "hub"},
                           "encoder": {"name": "FacebookAI/xlm-roberta-base"}}, base_dir=tmp_path)
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    notes = check_all(config)
    assert len(notes) == 2
    assert "cannot be reached" in notes[0] and "encoder 'FacebookAI/xlm-roberta-base'; XNLI (facebook/xnli)" in notes[0]
    assert notes[1].startswith("needs another machine: device: 'cuda'")


def test_alignment_tasks_refuse_gradient_accumulation():
    with pytest.raises(ParamsError, match="draws its InfoNCE negatives from one batch"):
        parse_params({"profile": "p", "run_name": "r", "conditions": ["none", "parallel_align"],
                      "tasks": {"parallel_align": {"source": "sample"}},
                      "training": {"intermediate": {"gradient_accumulation_steps": 2}}})
