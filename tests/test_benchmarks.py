"""The benchmarks run and print what the README quotes (their figures come from full runs)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.real
def test_training_throughput_benchmark_prints_both_paths_and_saves_for_plan(tmp_path, shared_data):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_throughput.py"), "--examples", "64",
                          "--eval-examples", "64", "--save-to", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = {tuple(line.split()[:2]): line for line in lines if re.match(r"^(usual|project) +(train|eval) ", line)}
    assert set(rows) == {("usual", "train"), ("usual", "eval"), ("project", "train"), ("project", "eval")}
    assert rows["usual", "train"].split()[-1] != "0.0%"  # every pair padded to 128: padding is reported
    assert re.match(r"^train speedup: \d+\.\d\dx, eval speedup: \d+\.\d\dx$", lines[-1])
    assert any(line.startswith("English XNLI dev accuracy after the same 64 pairs") for line in lines)
    saved = json.loads((tmp_path / ".cache" / "throughput.json").read_text())
    assert saved["6x384:cpu"]["train_tokens_per_second"] > 0


@pytest.mark.parametrize("script", ["gpu.sh", "gpu_wheels.sh"])
def test_gpu_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)]).returncode == 0
