"""Data-parallel training through ``accelerate launch``: a training unit run with 2 CPU processes
(gloo) writes the same files as one process, and with the same global batch (2 x 8 against
1 x 16) its training losses and model selection match one process's: for a classification task,
for an alignment task (whose InfoNCE negatives are the whole global batch's: the vectors of both
processes are gathered) and for an MNLI training with model selection.

The encoder is a tiny BERT without dropout, so the only difference left between the two is the
order of floating-point sums (the gradients are averaged across processes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from xnli_study import study
from xnli_study.config import load_params
from xnli_study.data import read_xnli_official
from xnli_study.languages import XNLI_LANGUAGES
from xnli_study.launch import launch_command
from xnli_study.models import build_tiny_encoder, build_tiny_tokenizer
from xnli_study.config import TinyEncoderConfig
from xnli_study.runfolder import RunFolder
from xnli_study.stages import STAGE_BY_NAME, at_run_dir
from xnli_study.units import read_unit, stage_units

pytestmark = pytest.mark.slow

#: the units trained both ways: an intermediate task, an alignment task (InfoNCE over the batch),
#: and an MNLI training with model selection
UNITS = {"intermediate": ["sst2-seed0", "parallel_align-seed0"], "transfer": ["none-seed0"]}
#: the logged training losses of 2 processes and of 1 may differ by this much (float sums only; a
#: batch grouped otherwise differs by about 0.04)
LOSS_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, sample_dir) -> Path:
    """A local encoder folder: a tiny BERT with dropout off, and a tokenizer for the sample."""
    folder = tmp_path_factory.mktemp("encoder") / "tiny-no-dropout"
    frame = read_xnli_official(sample_dir / "xnli", split="dev", languages=XNLI_LANGUAGES)
    tokenizer = build_tiny_tokenizer(list(frame["premise"]) + list(frame["hypothesis"]), vocab_size=800)
    model = build_tiny_encoder(TinyEncoderConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
                               vocab_size=len(tokenizer), seed=0)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def params(folder: Path, encoder: Path, *, processes: int, batch_size: int) -> Path:
    training = {"epochs": 1, "learning_rate": 0.002, "batch_size": batch_size, "max_length": 32}
    data = {
        "profile": "dp", "run_name": f"p{processes}", "output_dir": str(folder), "seeds": [0], "device": "cpu",
        "encoder": {"name": str(encoder)}, "languages": ["en", "fr"],
        "xnli": {"source": "sample", "eval_split": "test", "max_items": 40},
        "mnli": {"source": "sample", "max_examples": 380},
        "conditions": ["none", "sst2", "parallel_align"],
        "tasks": {"sst2": {"source": "sample", "max_examples": 400},
                  "parallel_align": {"source": "sample", "max_examples": 600, "layer": 1}},
        "training": {"intermediate": training, "mnli": {**training, "evals_per_epoch": 4}},
        "distributed": {"processes": processes},
    }
    path = folder / f"p{processes}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train(path: Path) -> Path:
    """Run the chosen units of each training stage as its notebook would (launched when the
    params say so); return the run folder."""
    config = load_params(path)
    for stage, names in UNITS.items():
        units = [u for u in stage_units(config, stage) if u.name in names]
        run = study.UnitsRun(config=config, run_dir=config.run_dir, stage=STAGE_BY_NAME[stage], params_path=str(path))
        study.run_units(run, units, units, study.unit_work(run, units))
    return config.run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, encoder):
    folder = tmp_path_factory.mktemp("dp")
    one = train(params(folder, encoder, processes=1, batch_size=16))
    two = train(params(folder, encoder, processes=2, batch_size=8))
    return one, two


def files(run_dir: Path) -> set[str]:
    """Every file a unit left in the run folder (its own folder and its model)."""
    out = set()
    for top in ("units", "models"):
        out |= {str(p.relative_to(run_dir)) for p in (run_dir / top).rglob("*") if p.is_file()}
    return out


def test_two_processes_write_the_files_of_one(runs):
    one, two = runs
    launched = {f for f in files(two) if f.endswith(RunFolder(two).unit("a", "b", "launch_log").name)}
    assert launched == {f"units/{stage}/{name}/launch.log" for stage, names in UNITS.items() for name in names}
    assert files(two) - launched == files(one)


def test_two_processes_train_as_one_with_the_same_global_batch(runs):
    one, two = runs
    config = at_run_dir(load_params(next(two.parent.glob("p2.yaml"))), two)
    for stage, names in UNITS.items():
        for unit in (u for u in stage_units(config, stage) if u.name in names):
            a = pd.read_csv(RunFolder(one).unit(stage, unit.name, "log"))
            b = pd.read_csv(RunFolder(two).unit(stage, unit.name, "log"))
            assert list(a["step"]) == list(b["step"]), stage  # the same optimizer steps
            # every step but the epoch's last, whose short batch Accelerate evens out across the
            # processes by repeating examples from the start
            losses = pd.concat([a["loss"], b["loss"]], axis=1, keys=["one", "two"]).dropna().iloc[:-1]
            assert len(losses) >= 1, stage
            gap = (losses["one"] - losses["two"]).abs()
            assert gap.max() < LOSS_TOLERANCE, (stage, losses)
            assert losses["one"].max() - losses["one"].min() > 0.002, stage  # the weights moved
    selection_one = read_unit(one, next(u for u in stage_units(load_params(next(one.parent.glob("p1.yaml"))), "transfer")
                                        if u.name == "none-seed0"))["data"]["selection"]
    selection_two = read_unit(two, next(u for u in stage_units(config, "transfer") if u.name == "none-seed0"))["data"]["selection"]
    assert selection_two["devices"] == 2 and selection_one["devices"] == 1
    assert selection_two["effective_batch"] == selection_one["effective_batch"] == 16
    assert selection_two["best_step"] == selection_one["best_step"]
    assert abs(selection_two["dev_en_accuracy"] - selection_one["dev_en_accuracy"]) < 0.05


def test_the_launch_command_follows_the_params(tmp_path, encoder, monkeypatch):
    config = load_params(params(tmp_path, encoder, processes=2, batch_size=8))
    unit = stage_units(config, "intermediate")[0]
    cmd = launch_command(config, params_path="p.yaml", run_dir=tmp_path, unit=unit, scratch=tmp_path)
    own = yaml.safe_load(Path(cmd[cmd.index("--config_file") + 1]).read_text())  # not the user's default config
    assert own["num_processes"] == 2 and own["num_machines"] == 1 and own["gpu_ids"] == "all"
    assert cmd[-4:] == ["--stage", "intermediate", "--unit", "sst2-seed0"]
    accelerate = tmp_path / "accelerate.yaml"
    accelerate.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 2\n"
                          "num_processes: 2\nmachine_rank: 0\nmain_process_ip: 10.0.0.1\nmain_process_port: 29500\n")
    data = yaml.safe_load((tmp_path / "p2.yaml").read_text())
    data["distributed"]["accelerate_config"] = str(accelerate)
    (tmp_path / "p2.yaml").write_text(yaml.safe_dump(data))
    config = load_params(tmp_path / "p2.yaml")
    from xnli_study.errors import ParamsError
    from xnli_study.launch import check_distributed

    monkeypatch.delenv("SLURM_JOB_NUM_NODES", raising=False)
    with pytest.raises(ParamsError, match="needs a launcher on every node"):  # two nodes, no allocation
        check_distributed(config)
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    check_distributed(config)
    cmd = launch_command(config, params_path="p.yaml", run_dir=tmp_path, unit=unit, scratch=tmp_path)
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]  # a launcher per node
    assert cmd[cmd.index("--config_file") + 1] == str(accelerate) and cmd[cmd.index("--rdzv_backend") + 1] == "c10d"


def test_more_processes_than_gpus_is_refused(tmp_path, encoder, monkeypatch):
    import torch

    from xnli_study.errors import ParamsError
    from xnli_study.launch import check_distributed

    data = yaml.safe_load(params(tmp_path, encoder, processes=4, batch_size=8).read_text())
    data["device"] = "auto"
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_params(path)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParamsError, match="4 processes, but this node has 2 GPUs"):
        check_distributed(config)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    check_distributed(config)  # one process per GPU
