"""A run shared out between shards: two ``xnli-study run --shard I/2`` side by side into one run
folder, then one run without ``--shard``, give the tables and summary of one unsharded run. Each
shard runs only its chains, writes its own log and manifest fragment, and the data stage runs
once. The minimal profile keeps it short (chains: none-seed0, sst2-seed0, P's alignment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import summary, tables
from xnli_study.cli import main
from xnli_study.config import load_params
from xnli_study.pipeline import parse_shard
from xnli_study.errors import ParamsError
from xnli_study.runfolder import RunFolder
from xnli_study.units import chains, plan_units, read_unit, shard_of

pytestmark = pytest.mark.slow


def shard(params, out, index: int, count: int, log) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(index)}  # as a one-node script gives each shard a GPU
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "-m", "xnli_study.cli", "run", "--params", str(params), "--out",
                                 str(out), "--shard", f"{index}/{count}", "--quiet"], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True)


def test_two_shards_side_by_side_then_merged_equal_one_run(minimal_run, tmp_path):
    params, clean = minimal_run
    out = tmp_path / "sharded"
    logs = [tmp_path / f"shard{i}.log" for i in range(2)]
    procs = [shard(params, out, i, 2, logs[i]) for i in range(2)]
    for proc, log in zip(procs, logs):
        proc.wait(timeout=900)
        assert proc.returncode == 0, log.read_text()
    folder = RunFolder(out)
    config = load_params(params)
    units = plan_units(config)
    fragments = [json.loads(folder.shard(i, 2, "manifest").read_text()) for i in range(2)]
    # the data stage ran once, in whichever shard took the lock first; the other waited and reused it
    assert sorted(f["data"].split(":")[0] for f in fragments) == ["complete, skipped", "ran"]
    for i, fragment in enumerate(fragments):
        assert fragment["status"] == "done" and fragment["cuda_visible_devices"] == str(i)
        assert folder.shard(i, 2, "log").read_text().strip()
        for stage, listed in units.items():  # each shard ran exactly its own chains' units
            mine = [u.name for u in listed if shard_of(config, u, 2) == i]
            assert fragment["units"][stage]["run"] == mine, (i, stage)
    assert {shard_of(config, u, 2) for stage in units.values() for u in stage} == {0, 1}
    finished = {}
    for stage in units.values():  # every unit complete, none of the stages put together yet
        for unit in stage:
            record = read_unit(out, unit)
            assert record["key"] == unit.key, unit.label
            finished[unit.label] = record["finished_at"]
    assert [p.name for p in (out / "stages").iterdir()] == ["data.json"]
    assert not folder.summary.exists() and not folder.report_html.exists()

    assert main(["run", "--params", str(params), "--out", str(out), "--quiet"]) == 0  # the merge
    for stage in units.values():  # nothing trained or measured again
        for unit in stage:
            assert read_unit(out, unit)["finished_at"] == finished[unit.label], unit.label
    assert summary(out) == summary(clean)
    got, want = tables(out), tables(clean)
    assert list(got) == list(want)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)
    manifest = json.loads(folder.manifest.read_text())
    assert sorted(manifest["shards"]) == ["0-of-2", "1-of-2"]
    assert all(s["status"] == "done" for s in manifest["shards"].values())


def test_shards_share_the_chains_out(minimal_run):
    config = load_params(minimal_run[0])
    assert chains(config) == [("none", 0), ("sst2", 0), "pretrained"]
    units = [u for stage in plan_units(config).values() for u in stage]
    by_chain = {}
    for unit in units:
        chain = "pretrained" if unit.checkpoint == "pretrained" else (unit.condition, unit.seed)
        by_chain.setdefault(chain, set()).add(shard_of(config, unit, 2))
    assert by_chain == {("none", 0): {0}, ("sst2", 0): {1}, "pretrained": {0}}  # a chain stays together
    assert {shard_of(config, u, 1) for u in units} == {0}


@pytest.mark.parametrize("text", ["2/2", "1", "-1/2", "a/b", "0/0"])
def test_a_bad_shard_is_one_line(text):
    with pytest.raises(ParamsError, match="give I/N with 0 <= I < N"):
        parse_shard(text)


def test_shard_takes_no_stages(smoke_yaml, capsys):
    assert main(["run", "--params", str(smoke_yaml), "--shard", "0/2", "--stages", "data"]) == 2
    assert "--shard runs the data stage and its share of the units; it takes no --stages" in capsys.readouterr().err


@pytest.fixture
def fake_cli(tmp_path):
    """A stand-in for ``xnli-study`` that records each call (its arguments and GPU) and succeeds,
    except for a shard named in ``FAIL_SHARD``."""
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "xnli-study"
    stub.write_text(f'#!/bin/bash\necho "CUDA=${{CUDA_VISIBLE_DEVICES:-}} OFFLINE=${{HF_HUB_OFFLINE:-}} $*" >> {calls}\n'
                    'case " $* " in *" --shard ${FAIL_SHARD:-none} "*) echo "error: it broke" >&2; exit 1;; esac\n')
    stub.chmod(0o755)
    return stub, calls


def test_the_one_node_script_runs_a_shard_per_gpu_then_the_merge(root, tmp_path, fake_cli):
    stub, calls = fake_cli
    env = {**os.environ, "XNLI_STUDY": str(stub), "CUDA_VISIBLE_DEVICES": "0,1,2"}
    script = ["bash", str(root / "scripts" / "gpus_one_node.sh"), "p.yaml", "out"]
    done = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    shards = sorted(lines[:3])
    assert shards == [f"CUDA={i} OFFLINE= run --params p.yaml --out out --quiet --shard {i}/3" for i in range(3)]
    assert lines[3] == "CUDA=0,1,2 OFFLINE= run --params p.yaml --out out"  # the merge, once every shard ended
    calls.unlink()
    pairs = subprocess.run(script, cwd=tmp_path, env={**env, "CUDA_VISIBLE_DEVICES": "4,5,6,7", "PER_SHARD": "2"},
                           capture_output=True, text=True)
    assert pairs.returncode == 0, pairs.stderr
    assert sorted(calls.read_text().splitlines()[:2]) == [
        "CUDA=4,5 OFFLINE= run --params p.yaml --out out --quiet --shard 0/2",
        "CUDA=6,7 OFFLINE= run --params p.yaml --out out --quiet --shard 1/2"]
    calls.unlink()
    failed = subprocess.run(script, cwd=tmp_path, env={**env, "CUDA_VISIBLE_DEVICES": "0,1", "FAIL_SHARD": "1/2"},
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "shard 1/2 failed: error: it broke" in failed.stderr
    assert len(calls.read_text().splitlines()) == 2  # no merge after a failed shard


def test_the_slurm_script_runs_its_array_task_as_a_shard(root, tmp_path, fake_cli):
    stub, calls = fake_cli
    env = {**{k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE")},
           "XNLI_STUDY": str(stub), "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_MAX": "8"}
    done = subprocess.run(["bash", str(root / "scripts" / "slurm_array.sh"), "p.yaml", "/runs/full"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # an array numbered 1-8: its fifth task is shard 4 of 8
    assert calls.read_text().strip() == "CUDA= OFFLINE=1 run --params p.yaml --out /runs/full --quiet --shard 4/8"


@pytest.fixture
def small_params(tmp_path, smoke_yaml):
    path = tmp_path / "p.yaml"
    path.write_text(smoke_yaml.read_text().replace("output_dir: ../outputs", f"output_dir: {tmp_path / 'outputs'}"))
    return path, RunFolder(tmp_path / "outputs" / "smoke")


def test_a_run_and_the_shards_of_one_folder_exclude_each_other(small_params, capsys):
    from xnli_study.pipeline import folder_lock

    params, folder = small_params
    with folder_lock(folder.lock, shared=True):  # a shard is running
        assert main(["run", "--params", str(params), "--quiet"]) == 1
        assert "shards or another run are using" in capsys.readouterr().err
    with folder_lock(folder.shard(0, 2, "lock"), shared=False):  # shard 0/2 is running
        assert main(["run", "--params", str(params), "--quiet", "--shard", "0/2"]) == 1
        assert "shard 0/2 is already running" in capsys.readouterr().err
    with folder_lock(folder.lock, shared=False):  # a run without --shard is running
        assert main(["run", "--params", str(params), "--quiet", "--shard", "1/2"]) == 1
        assert "a run without --shard is using" in capsys.readouterr().err
    assert not folder.record("data").exists() and not folder.manifest.exists()
