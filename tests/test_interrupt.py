"""An interrupted run (Ctrl-C, or SIGTERM from a scheduler) says so in its manifest, with what was
complete, and a new run starts without the half-written files a killed run left."""

import json
import os
import signal

import pytest

from xnli_study import pipeline
from xnli_study.cli import main
from xnli_study.files import PARTIAL
from xnli_study.runfolder import RUN_FOLDER_VERSION, RunFolder


@pytest.fixture
def params(tmp_path, smoke_yaml):
    text = smoke_yaml.read_text().replace("output_dir: ../outputs", f"output_dir: {tmp_path / 'outputs'}")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_records_where_it_stopped(params, tmp_path, monkeypatch, capsys, how):
    def stop(stage, **kwargs):
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    folder = RunFolder(tmp_path / "outputs" / "smoke")
    half = folder.root / "tables" / f".accuracy.csv{PARTIAL}x1y2.csv"  # a write a kill cut short
    half.parent.mkdir(parents=True)
    half.write_text("condition,se")
    kept = folder.root / "tables" / "accuracy.csv"
    kept.write_text("whole")
    monkeypatch.setattr(pipeline, "_execute", stop)
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["run", "--params", str(params), "--quiet"]) == 130
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is put back
    manifest = json.loads(folder.manifest.read_text())
    assert manifest["stages"]["data"]["status"] == "interrupted"
    assert manifest["interrupted"]["stage"] == "data" and manifest["interrupted"]["stages_done"] == []
    assert manifest["interrupted"]["units_done"] == [] and manifest["run_folder_version"] == RUN_FOLDER_VERSION
    assert not half.exists() and kept.read_text() == "whole"
    assert "interrupted" in capsys.readouterr().err
