"""Units of work: keyed by the settings they read and the units they build on, so that a new seed
or a setting only some units read reruns only those units, and a rerun says why each one runs."""

import copy
import time

import pytest
import yaml

from xnli_study import pipeline, study, units
from xnli_study.config import parse_params
from xnli_study.files import write_json
from xnli_study.runfolder import RunFolder


@pytest.fixture
def smoke(smoke_yaml):
    return yaml.safe_load(smoke_yaml.read_text())


def keys(data: dict) -> dict[str, str]:
    config = parse_params(copy.deepcopy(data), base_dir=".")
    return {u.label: u.key for stage in units.plan_units(config).values() for u in stage}


def changed(data: dict, edit) -> set[str]:
    """The units whose key changes when ``edit`` is applied to the params."""
    before = keys(data)
    edited = copy.deepcopy(data)
    edit(edited)
    after = keys(edited)
    return {label for label in after if before.get(label) != after[label]}


def test_each_stage_has_one_unit_per_condition_and_seed_or_checkpoint(smoke):
    plan = units.plan_units(parse_params(smoke, base_dir="."))
    assert [u.name for u in plan["intermediate"]] == ["sst2-seed0", "sst2-seed1", "parallel_align-seed0",
                                                      "parallel_align-seed1"]
    assert len(plan["transfer"]) == 6 and len(plan["alignment"]) == 1 + 4 + 6
    assert plan["alignment"][0].name == "pretrained"


def test_a_new_seed_adds_units_and_leaves_the_others_keys_alone(smoke):
    new = changed(smoke, lambda d: d.update(seeds=[0, 1, 2]))
    assert new == {label for label in keys({**smoke, "seeds": [0, 1, 2]}) if label.endswith("seed2")}
    assert len(new) == 2 + 3 + 5


def test_a_setting_changes_only_the_units_that_read_it_and_those_built_on_them(smoke):
    lr = changed(smoke, lambda d: d["training"]["mnli"].update(learning_rate=1e-4))
    assert lr == {f"transfer/{c}-seed{s}" for c in ("none", "sst2", "parallel_align") for s in (0, 1)} | {
        f"alignment/final-{c}-seed{s}" for c in ("none", "sst2", "parallel_align") for s in (0, 1)}

    sst2 = changed(smoke, lambda d: d["tasks"]["sst2"].update(max_examples=500))
    assert sst2 == {f"{stage}/{kind}sst2-seed{s}" for s in (0, 1)
                    for stage, kind in (("intermediate", ""), ("transfer", ""), ("alignment", "intermediate-"),
                                        ("alignment", "final-"))}

    # only the alignment task reads the XNLI settings and the languages in the intermediate stage
    for edit in (lambda d: d["xnli"].update(max_items=100), lambda d: d.update(languages=["en", "fr", "de"])):
        moved = changed(smoke, edit)
        assert {u for u in moved if u.startswith("intermediate/")} == {"intermediate/parallel_align-seed0",
                                                                       "intermediate/parallel_align-seed1"}
    # the sample's size changes the pretrained P (pretrained on the sample): every unit is built on it
    assert changed(smoke, lambda d: d["xnli"].update(sample_items=240)) == set(keys(smoke))
    # the headline layer the smoke encoder resolves "auto" to: nothing changes
    assert not changed(smoke, lambda d: d["alignment"].update(headline_layer=2))
    moved = changed(smoke, lambda d: d["alignment"].update(headline_layer=1))
    assert {u.split("/")[1] for u in moved if not u.startswith("alignment/")} == {
        "parallel_align-seed0", "parallel_align-seed1"}  # parallel_align's default layer moved

    probe = changed(smoke, lambda d: d["alignment"].update(max_sentences=100))
    assert probe and all(label.startswith("alignment/") for label in probe)
    # where the run folder lives and which models stay on disk change no unit
    assert not changed(smoke, lambda d: d.update(output_dir="/elsewhere", run_name="other"))
    assert not changed(smoke, lambda d: d["training"].update(save_models="none"))
    assert not changed(smoke, lambda d: d["training"]["intermediate"].update(checkpoint_every=7))


def test_a_rerun_says_why_each_unit_runs(smoke, tmp_path):
    config = parse_params(copy.deepcopy(smoke), base_dir=".")
    plan = units.stage_units(config, "transfer")
    for unit in plan:
        out = RunFolder(tmp_path).unit(unit.stage, unit.name, "log")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("x")
        units.write_unit(tmp_path, unit, outputs=[str(out.relative_to(tmp_path))], data={}, seconds=0.0)
    assert units.describe(tmp_path, plan) == ([], [])

    edited = copy.deepcopy(smoke)
    edited["seeds"] = [0, 1, 2]
    edited["training"]["mnli"]["learning_rate"] = 1e-4
    new_plan = units.stage_units(parse_params(edited, base_dir="."), "transfer")
    # a run that stopped before seed 2's units: they are not run yet, not "new"
    _, why = units.describe(tmp_path, [u for u in new_plan if u.seed == 2])
    assert why == ["not run yet: none-seed2, sst2-seed2, parallel_align-seed2"]
    # after a complete stage for seeds 0 and 1, seed 2 is new
    write_json(RunFolder(tmp_path).record("transfer"), {"settings": config.settings(("seeds", "conditions"))})
    todo, why = units.describe(tmp_path, new_plan)
    assert len(todo) == 9
    assert why == ["training.mnli.learning_rate changed: none-seed0, none-seed1, sst2-seed0, sst2-seed1, "
                   "parallel_align-seed0, parallel_align-seed1",
                   "new seed 2: none-seed2, sst2-seed2, parallel_align-seed2"]

    # a unit whose output went missing runs again; the others stay complete
    RunFolder(tmp_path).unit("transfer", "sst2-seed1", "log").unlink()
    todo, why = units.describe(tmp_path, plan)
    assert [u.name for u in todo] == ["sst2-seed1"] and why == ["output missing: units/transfer/sst2-seed1/log.csv: sst2-seed1"]

    # an upstream unit that changed is named
    edited = copy.deepcopy(smoke)
    edited["tasks"]["sst2"]["max_examples"] = 500
    unit = next(u for u in units.stage_units(parse_params(edited, base_dir="."), "transfer") if u.name == "sst2-seed0")
    assert units.unit_status(tmp_path, unit) == "intermediate/sst2-seed0 changed"


def test_a_unit_built_on_a_unit_trained_again_runs_again(smoke, tmp_path):
    plan = units.plan_units(parse_params(copy.deepcopy(smoke), base_dir="."))
    first, built_on = plan["intermediate"][0], plan["transfer"][2]
    assert built_on.upstream == {first.label: first.key}
    units.write_unit(tmp_path, first, outputs=[], data={}, seconds=0.0)
    units.write_unit(tmp_path, built_on, outputs=[], data={}, seconds=0.0)
    assert units.unit_status(tmp_path, built_on) is None
    time.sleep(0.01)  # records are timed to the millisecond
    units.write_unit(tmp_path, first, outputs=[], data={}, seconds=0.0)  # --force, same settings
    assert units.unit_status(tmp_path, built_on) == "intermediate/sst2-seed0 ran again"


def test_a_record_is_written_only_when_its_outputs_exist(smoke, tmp_path):
    unit = units.stage_units(parse_params(smoke, base_dir="."), "transfer")[0]
    with pytest.raises(RuntimeError, match="outputs missing: models/none"):
        units.write_unit(tmp_path, unit, outputs=["models/none/seed0/final"], data={}, seconds=0.0)
    assert units.read_unit(tmp_path, unit) is None


def test_checkpoints_of_another_unit_key_are_never_resumed_from(smoke, tmp_path):
    unit = units.stage_units(parse_params(smoke, base_dir="."), "intermediate")[0]
    folder = study.resume_folder(tmp_path, unit)
    (folder / "checkpoint-4").mkdir()
    assert (study.resume_folder(tmp_path, unit) / "checkpoint-4").is_dir()  # same key: kept
    edited = copy.deepcopy(smoke)
    edited["training"]["intermediate"]["learning_rate"] = 1e-3
    other = units.stage_units(parse_params(edited, base_dir="."), "intermediate")[0]
    assert other.name == unit.name and other.key != unit.key
    assert not (study.resume_folder(tmp_path, other) / "checkpoint-4").exists()  # other settings: deleted


def test_a_changed_data_file_reruns_the_units_that_read_it(smoke, tmp_path):
    data = copy.deepcopy(smoke)
    data["mnli"] = {"source": "local", "path": str(tmp_path / "mnli.jsonl")}
    data["tasks"]["sst2"] = {"source": "local", "path": str(tmp_path / "sst2.tsv")}
    (tmp_path / "mnli.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": "neutral"}\n')
    (tmp_path / "sst2.tsv").write_text("sentence\tlabel\nfine .\t1\n")
    before = units.plan_units(parse_params(copy.deepcopy(data), base_dir="."))
    (tmp_path / "mnli.jsonl").write_text('{"premise": "a", "hypothesis": "c d", "label": "neutral"}\n')
    after = units.plan_units(parse_params(copy.deepcopy(data), base_dir="."))
    moved = {u.label for stage in after for u, v in zip(after[stage], before[stage]) if u.key != v.key}
    assert moved == {f"transfer/{c}-seed{s}" for c in ("none", "sst2", "parallel_align") for s in (0, 1)} | {
        f"alignment/final-{c}-seed{s}" for c in ("none", "sst2", "parallel_align") for s in (0, 1)}
    unit = before["transfer"][0]
    units.write_unit(tmp_path, unit, outputs=[], data={}, seconds=0.0)
    assert units.unit_status(tmp_path, after["transfer"][0]) == "the content of mnli.path changed"


def test_force_runs_every_unit_again_and_a_plain_rerun_none(smoke, tmp_path):
    config = parse_params(copy.deepcopy(smoke), base_dir=".")
    plan = units.stage_units(config, "transfer")
    for unit in plan:
        units.write_unit(tmp_path, unit, outputs=[], data={}, seconds=0.0)
    pipeline.say_units(RunFolder(tmp_path), config, "transfer", force=False)
    assert all(units.unit_status(tmp_path, u) is None for u in plan)
    pipeline.say_units(RunFolder(tmp_path), config, "transfer", force=True)
    assert units.describe(tmp_path, plan)[0] == plan  # every record gone: every unit runs
