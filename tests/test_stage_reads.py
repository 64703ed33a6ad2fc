"""Each stage's fingerprint covers every setting its code reads (``Stage.reads`` is kept by hand).

The stage functions run in-process on a minimal profile with a config that records every setting
read through it; the stage notebooks' own code is scanned for ``config.<setting>``. A setting read
but not covered would let a changed value leave a stale stage marked complete.
"""

from __future__ import annotations

import json
import re
import types

import pytest
import yaml
from pydantic import BaseModel

from xnli_study import stages, study
from xnli_study.config import StudyConfig

pytestmark = pytest.mark.slow

STAGE_FUNCTIONS = {"data": study.inspect_data, "intermediate": study.train_intermediate,
                   "transfer": study.train_and_evaluate_transfer, "alignment": study.measure_alignment}
#: methods that read the whole config on purpose (fingerprints, the resolved YAML)
WHOLE = {"fingerprint", "to_yaml", "_resolved_dump"}


class ConfigReads:
    """A read-only view of a pydantic config that records the dotted path of every setting read.

    Properties and methods of the config's own class run with the view as ``self``, so that the
    settings they read are recorded too (``config.run_dir`` reads ``output_dir`` and ``run_name``).
    """

    def __init__(self, model: BaseModel, prefix: str = "", log: set[str] | None = None):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "paths", set() if log is None else log)

    def __getattr__(self, name: str):
        model, prefix, log = self._model, self._prefix, self.paths
        attr = getattr(type(model), name, None)
        if isinstance(attr, property):
            return attr.fget(self)
        if name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                return ConfigReads(value, f"{prefix}{name}.", log)
            log.add(prefix + name)
            return value
        if isinstance(attr, types.FunctionType) and name in vars(type(model)) and name not in WHOLE:
            return types.MethodType(attr, self)
        return getattr(model, name)

    def __setattr__(self, name, value):
        raise AttributeError("the config is read-only")


def covered(path: str, reads: tuple[str, ...] | None) -> bool:
    """Is the setting ``path`` (``training.mnli.epochs``) inside one of ``reads`` or never fingerprinted?"""
    if reads is None or path.split(".")[0] in stages.NOT_FINGERPRINTED or path in stages.NOT_FINGERPRINTED:
        return True
    return any(path == r or path.startswith(r + ".") for r in reads)


def notebook_reads(root, notebook: str) -> set[str]:
    """``config.<a>[.<b>]`` read in a stage notebook's code cells."""
    nb = json.loads((root / "notebooks" / notebook).read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    found = set()
    for match in re.finditer(r"\bconfig\.([a-z_]+)(?:\.([a-z_]+))?", code):
        first, second = match.groups()
        sub = StudyConfig.model_fields.get(first)
        nested = sub is not None and isinstance(sub.annotation, type) and issubclass(sub.annotation, BaseModel)
        found.add(f"{first}.{second}" if second and nested else first)
    return found


def test_the_recorder_and_the_coverage_rule_can_fail(smoke_yaml):
    from xnli_study.config import load_params

    reads = ConfigReads(load_params(smoke_yaml))
    _ = reads.training.mnli.learning_rate, reads.run_dir, reads.task_data("sst2").max_examples
    assert {"training.mnli.learning_rate", "output_dir", "run_name", "tasks"} <= reads.paths
    assert not covered("training.mnli.learning_rate", ("training.intermediate", "seeds"))
    assert not covered("tasks", ("encoder",)) and covered("alignment.layers", ("alignment",))


def test_each_stage_reads_only_settings_its_fingerprint_covers(tmp_path, smoke_yaml, root, monkeypatch):
    data = yaml.safe_load(smoke_yaml.read_text())
    data.update(output_dir=str(tmp_path), run_name="reads", seeds=[0], languages=["en", "fr", "de"])
    data["encoder"]["tiny"] = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                               "vocab_size": 800, "pretrain_epochs": 1}
    data["sample"] = {"corpus_sentences": 30, "parallel_sentences": 10}
    data["xnli"]["sample_items"] = 60
    data["mnli"]["max_examples"] = 120
    data["tasks"]["sst2"]["max_examples"] = 100
    data["distributed"] = {"unit_processes": 1}  # every read in this process, where they are recorded
    for stage in ("intermediate", "mnli"):
        data["training"][stage]["epochs"] = 1
    data["alignment"].update(language_id_sentences=20, max_sentences=40)
    data["training"]["save_models"] = "encoders"  # the alignment stage removes each F_t it measured
    params = tmp_path / "reads.yaml"
    params.write_text(yaml.safe_dump(data))
    uncovered = {}
    # the units' keys are read from the whole config on purpose (each unit's own settings, the
    # digests of the input files, the keys of the units it builds on; tests/test_units.py checks them)
    real_units = study.stage_units
    monkeypatch.setattr(study, "stage_units", lambda config, stage: real_units(getattr(config, "_model", config), stage))
    for stage in stages.NOTEBOOK_STAGES:
        if stage.name not in STAGE_FUNCTIONS:
            continue  # the report stage reads every setting (reads=None)
        run = stages.StageRun(stage.name, params_path=str(params))
        config = run.config
        recorder = ConfigReads(config)
        run.config = recorder
        STAGE_FUNCTIONS[stage.name](run)
        run.config = config
        run.finish()
        paths = recorder.paths | notebook_reads(root, stage.notebook)
        assert paths, stage.name
        missed = sorted(p for p in paths if not covered(p, stage.reads))
        if missed:
            uncovered[stage.name] = missed
    assert uncovered == {}, "add these settings to the stage's reads in xnli_study/stages.py"
    # training.save_models: encoders kept every I_t and left a note for each F_t; the alignment
    # stage runs again from the cached vectors of the removed models, with the same table
    models = tmp_path / "reads" / "models"
    assert all((models / c / "seed0" / "final" / "removed.json").is_file() for c in ("none", "sst2", "parallel_align"))
    assert (models / "sst2" / "seed0" / "intermediate" / "config.json").is_file()
    first = stages.StageRun("alignment", params_path=str(params)).read_table("alignment")
    for record in (tmp_path / "reads" / "units" / "alignment").glob("*/record.json"):
        record.unlink()  # measured again, not read back from the units' records
    again = study.measure_alignment(stages.StageRun("alignment", params_path=str(params)))["alignment"]
    assert again.reset_index(drop=True).equals(first.reset_index(drop=True))
