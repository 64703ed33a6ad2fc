import json
import subprocess
import sys

import pytest
import yaml
from pathlib import Path

from xnli_study import models
from xnli_study.config import load_params, parse_params
from xnli_study.errors import ParamsError
from xnli_study.languages import XNLI_LANGUAGES

from conftest import write_params


def smoke_dict(path):
    return yaml.safe_load(path.read_text())


def test_smoke_profile_is_valid(smoke_yaml):
    config = load_params(smoke_yaml)
    assert config.profile == "smoke"
    assert config.languages == list(XNLI_LANGUAGES)
    assert config.conditions[0] == "none" and len(config.seeds) == 2
    assert config.run_dir == (smoke_yaml.parent / "../outputs/smoke").resolve()


def test_relative_paths_resolve_against_the_params_file(tmp_path, smoke_yaml):
    data = smoke_dict(smoke_yaml)
    data["xnli"] = {"source": "official", "path": "data/xnli"}
    data["conditions"] = ["none", "sst2"]  # parallel_align's sample aligns pseudo-languages only
    data["tasks"].pop("parallel_align")
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_params(path)
    assert config.path(config.xnli.path) == (tmp_path / "sub" / "data" / "xnli").resolve()


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(sedes=[0]), "unknown key 'sedes'"),
    (lambda d: d["xnli"].update(sorce="hub"), "unknown key 'xnli.sorce'"),
    (lambda d: d["training"]["mnli"].update(lr=1), "unknown key 'training.mnli.lr'"),
    (lambda d: d.update(languages=["en", "xx"]), "unknown language code 'xx'"),
    (lambda d: d.update(conditions=["none", "sst3"]), "unknown task 'sst3'"),
    (lambda d: d.update(conditions=["sst2"]), "must include 'none'"),
    (lambda d: d.update(languages=["fr", "de"]), "must include 'en'"),
    (lambda d: d.update(seeds="zero"), "'seeds'"),
    (lambda d: d["training"]["mnli"].update(epochs="many"), "'training.mnli.epochs'"),
    (lambda d: d["xnli"].update(source="ftp"), "'xnli.source'"),
    # a local source needs its path: one validator per section says so, at parse time
    (lambda d: d.update(xnli={"source": "official"}), "'xnli' source 'official' needs xnli.path"),
    (lambda d: d.update(xnli={"source": "xtreme"}), "'xnli' source 'xtreme' needs xnli.path"),
    (lambda d: d.update(mnli={"source": "local"}), "'mnli' source 'local' needs mnli.path"),
    (lambda d: d["tasks"].update(sst2={"source": "local"}), "'tasks.sst2' source 'local' needs a path"),
    (lambda d: d.update(conditions=["none", "qqp"], tasks={"qqp": {"source": "sample"}}),
     "'tasks' task 'qqp' has no synthetic sample"),
])
def test_bad_params_name_the_culprit(smoke_yaml, mutate, expected):
    data = smoke_dict(smoke_yaml)
    mutate(data)
    with pytest.raises(ParamsError) as err:
        parse_params(data, source="bad.yaml")
    message = str(err.value)
    assert expected in message
    assert message.startswith("bad.yaml: ")
    assert "\n" not in message


def test_unknown_key_lists_what_is_allowed(smoke_yaml):
    data = smoke_dict(smoke_yaml)
    data["alignment"]["layer"] = 3
    with pytest.raises(ParamsError, match="allowed here: probe_split, max_sentences, layers"):
        parse_params(data)


def test_fingerprint_ignores_location_but_not_settings(smoke_yaml):
    data = smoke_dict(smoke_yaml)
    a = parse_params(data)
    b = parse_params({**data, "run_name": "elsewhere", "output_dir": "/tmp/x"})
    c = parse_params({**data, "seeds": [0, 1, 2]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_resolved_params_reload_identically(tmp_path, smoke_yaml):
    config = load_params(smoke_yaml)
    resolved = tmp_path / "params.yaml"
    resolved.write_text(config.to_yaml())
    again = load_params(resolved)
    assert again.fingerprint() == config.fingerprint()
    assert again.run_dir == config.run_dir


@pytest.mark.parametrize("body, expected", [
    ("profile: x\nrun_name: x\nlanguages: [en, klingon]\n", "unknown language code 'klingon'"),
    ("profile: x\nrun_name: x\nconditions: [none, squadd]\n", "unknown task 'squadd'"),
    ("profile: x\nrun_name: x\nbogus: 1\n", "unknown key 'bogus'"),
    ("profile: x\nrun_name: [x\n", "not valid YAML"),
])
def test_cli_exits_2_with_one_line(tmp_path, body, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    proc = subprocess.run([sys.executable, "-m", "xnli_study.cli", "run", "--params", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0] and str(path) in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_missing_params_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xnli_study.cli", "check", "--params",
                           str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_resolved_params_with_data_paths_keep_every_stage_fingerprint(tmp_path, root):
    """A profile with data_dir and relative data paths: the run folder's params.yaml (absolute
    paths) must fingerprint like the original, or no stage would ever count as complete."""
    from xnli_study.pipeline import STAGES

    config = load_params(root / "params" / "offline-real.yaml")
    resolved = tmp_path / "params.yaml"
    resolved.write_text(config.to_yaml())
    again = load_params(resolved)
    assert again.data_dir is None and Path(again.xnli.path).is_absolute()
    assert again.data_path(again.xnli.path) == config.data_path(config.xnli.path)
    for stage in STAGES:
        assert again.fingerprint(stage.reads) == config.fingerprint(stage.reads), stage.name
    moved = parse_params({**yaml.safe_load((root / "params" / "offline-real.yaml").read_text()),
                          "data_dir": str(tmp_path)}, base_dir=root / "params")
    assert moved.fingerprint(STAGES[0].reads) != config.fingerprint(STAGES[0].reads)


def test_a_profile_that_subsamples_without_saying_so_is_warned(tmp_path, smoke_yaml):
    data = smoke_dict(smoke_yaml)
    assert parse_params(data).subsampling_warnings() == []  # smoke subsamples by design
    data["profile"] = "mine"
    del data["mnli"]["max_examples"]
    data["tasks"] = {}
    data["conditions"] = ["none", "sst2"]
    warnings = parse_params(data).subsampling_warnings()
    assert warnings == [
        "mnli.max_examples is not set: training uses a seeded subsample of 2,000 examples; write "
        "max_examples: null for every row, or a number to keep a subsample",
        "tasks.sst2.max_examples is not set: training uses a seeded subsample of 2,000 examples; write "
        "max_examples: null for every row, or a number to keep a subsample"]
    data["mnli"]["max_examples"] = 2000  # written out: explicit
    data["tasks"] = {"sst2": {"source": "sample", "max_examples": None}}
    assert parse_params(data).subsampling_warnings() == []
    path = tmp_path / "mine.yaml"
    del data["mnli"]["max_examples"]
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "xnli_study.cli", "check", "--params", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stderr.startswith("warning: mnli.max_examples is not set")


@pytest.mark.parametrize("profile", ["smoke.yaml", "offline-real.yaml"])
def test_every_profile_and_its_resolved_copy_fingerprint_alike(tmp_path, root, profile):
    """Defaults as written (an int where a float is meant) must fingerprint like the values the
    run folder's params.yaml gives back after a YAML round trip, for every stage."""
    from xnli_study.stages import STAGES

    config = load_params(root / "params" / profile)
    resolved = tmp_path / "params.yaml"
    resolved.write_text(config.to_yaml())
    again = load_params(resolved)
    for stage in STAGES:
        assert again.fingerprint(stage.reads) == config.fingerprint(stage.reads), stage.name


# ---- inputs that used to pass the checks and fail later, or end in a traceback ---------------------
def _model_folder(folder, tiny, files):
    tokenizer, model = tiny
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in list(folder.iterdir()):
        if name.name.endswith(".safetensors"):
            name.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("files, allow, message", [
    ({}, False, "holds no weights"),
    ({"pytorch_model.bin": "not read"}, False, "only as pickle files (pytorch_model.bin)"),
    ({"pytorch_model.bin": "not read"}, True, None),
])
def test_model_folders_need_safetensors_weights(tmp_path, tiny, files, allow, message):
    from xnli_study.cli import main

    folder = _model_folder(tmp_path / "enc", tiny, files)
    params = write_params(tmp_path, f"profile: p\nrun_name: r\nencoder: {{name: ./enc, allow_pickle: {str(allow).lower()}}}\n")
    if message is None:
        assert main(["check", "--params", str(params)]) == 0  # trusted: allowed, and still not opened here
        return
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_params_and_check(params)
    assert main(["run", "--params", str(params)]) == 2
    assert not (tmp_path / ".." / "outputs").exists() or not any((tmp_path / "outputs").glob("r/stages/*.json"))


def test_custom_model_code_is_refused_before_anything_loads(tmp_path, tiny):
    folder = _model_folder(tmp_path / "enc", tiny, {})
    tiny[1].save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text(
        "from transformers import BertModel\n\n\nclass CustomModel(BertModel):\n    custom_code_ran = True\n")
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    params = write_params(tmp_path, "profile: p\nrun_name: r\nencoder: {name: ./enc}\n")
    with pytest.raises(ParamsError, match="needs its own Python code .auto_map.*encoder.trust_remote_code: true"):
        load_params_and_check(params)
    # with the switch on, the folder passes and its code is what loads
    params = write_params(tmp_path, "profile: p\nrun_name: r\nencoder: {name: ./enc, trust_remote_code: true}\n")
    load_params_and_check(params)
    assert not getattr(models.load_encoder(str(folder)), "custom_code_ran", False)  # the standard class
    assert getattr(models.load_encoder(str(folder), trust_remote_code=True), "custom_code_ran", False)


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    from xnli_study.cli import main

    (tmp_path / "taken").write_text("a file")
    params = write_params(tmp_path, "profile: p\nrun_name: r\noutput_dir: taken\nmnli: {max_examples: null}\n")
    assert main(["check", "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output_dir:" in err[0] and "is a file" in err[0]


def test_xtreme_test_without_labels_is_caught_before_any_stage(tmp_path):
    with pytest.raises(ParamsError, match="XTREME's test files carry no labels.*xnli.labels_from"):
        parse_params({"profile": "p", "run_name": "r", "xnli": {"source": "xtreme", "path": "x", "eval_split": "test"}})
    parse_params({"profile": "p", "run_name": "r", "xnli": {"source": "xtreme", "path": "x", "eval_split": "dev"}})


def load_params_and_check(params):
    from xnli_study.preflight import preflight

    preflight(load_params(params))
