"""Caches keyed by content: a changed setting gets another key, an unchanged one the same, and
``--rebuild-caches`` deletes exactly the caches of the run's params."""

from xnli_study import models, pipeline
from xnli_study.cli import build_parser
from xnli_study.config import parse_params
from xnli_study.runfolder import RunFolder


def config_at(tmp_path, **changes):
    data = {"profile": "p", "run_name": "r", "output_dir": str(tmp_path)}
    data.update(changes)
    return parse_params(data, base_dir=tmp_path)


def test_the_pretrained_key_covers_the_tiny_and_the_sample_settings(tmp_path):
    base = models.tiny_key(config_at(tmp_path))
    assert models.tiny_key(config_at(tmp_path, run_name="other", description="prose")) == base
    for changes in ({"encoder": {"tiny": {"hidden_size": 32}}}, {"encoder": {"tiny": {"pretrain_epochs": 1}}},
                    {"encoder": {"tiny": {"seed": 1}}}, {"sample": {"anchor_share": 0.2}},
                    {"sample": {"corpus_sentences": 50}}, {"xnli": {"sample_items": 90}}):
        assert models.tiny_key(config_at(tmp_path, **changes)) != base, changes


def test_rebuild_caches_removes_this_runs_caches_only(tmp_path):
    config = config_at(tmp_path)
    folder = RunFolder(config.run_dir)
    mine = [folder.embeddings_cache / "k1", folder.tokenized_cache / "k2", folder.sample / "xnli",
            models.tiny_folder(config)]
    other_p = models.tiny_folder(config_at(tmp_path, encoder={"tiny": {"hidden_size": 32}}))
    kept = [other_p, folder.root / "tables", folder.root / "models" / "sst2"]
    for path in mine + kept:
        path.mkdir(parents=True)
        (path / "f").write_text("x")
    removed = pipeline.clear_caches(config)
    assert sorted(removed) == sorted([folder.embeddings_cache, folder.tokenized_cache, folder.sample,
                                      models.tiny_folder(config)])
    assert not any(p.exists() for p in mine) and all((p / "f").is_file() for p in kept)
    assert pipeline.clear_caches(config) == []


def test_the_command_line_offers_both_switches():
    args = build_parser().parse_args(["run", "--force", "--rebuild-caches"])
    assert args.force and args.rebuild_caches
