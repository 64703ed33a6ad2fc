"""``xnli-study prefetch``: download every hub model and dataset a profile reads, ahead of the run.

On a cluster whose compute nodes cannot reach the Hugging Face hub, run it on a login node that
can (with the same ``HF_HOME`` as the compute nodes); the run then reads the cached copies, with
``HF_HUB_OFFLINE=1`` set on the compute nodes. The downloads go through the readers the run itself
uses, so the cache holds exactly what the run will ask for.
"""

from __future__ import annotations

import logging
from typing import Callable

from .data import load_mnli, load_xnli
from .errors import HubUnavailableError, StudyError
from .hub import hub_reachable
from .models import load_encoder, load_tokenizer
from .provenance import hub_repos, hub_revisions
from .tasks import load_task

log = logging.getLogger("xnli_study")


def fetchers(config) -> list[tuple[str, Callable[[], object]]]:
    """``(what, read it)`` for each part of the profile that comes from the hub."""
    out: list[tuple[str, Callable[[], object]]] = []
    run_dir = config.run_dir
    if any(kind == "model" for kind, _, _ in hub_repos(config)):
        name, revision, remote = config.encoder.name, config.encoder.revision, config.encoder.trust_remote_code
        out.append((f"encoder {name}", lambda: (load_tokenizer(name, revision=revision, trust_remote_code=remote),
                                                 load_encoder(name, revision=revision, trust_remote_code=remote))))
    if config.xnli.source == "hub":
        for split in sorted({"dev", config.xnli.eval_split, config.alignment.probe_split}):
            out.append((f"XNLI {split} ({config.xnli.hub_id})",
                        lambda split=split: load_xnli(config, split=split, run_dir=run_dir)))
    if config.mnli.source == "hub":
        out.append((f"MultiNLI ({config.mnli.hub_id})", lambda: load_mnli(config, run_dir=run_dir)))
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "hub":
            out.append((f"task {task}", lambda task=task: load_task(task, config, run_dir=run_dir)))
    return out


def prefetch(config) -> dict[str, dict]:
    """Read every hub part of the profile once, so that it lands in the Hugging Face cache; return
    the repositories with the commit now cached (:func:`~xnli_study.provenance.hub_revisions`).
    Where the hub cannot be reached, raise ``HubUnavailableError`` listing what it would fetch."""
    repos = hub_repos(config)
    if not repos:
        return {}
    if not hub_reachable():
        listed = "; ".join(f"{kind} {repo}" + (f"@{rev}" if rev else "") for kind, repo, rev in repos)
        raise HubUnavailableError(
            f"the Hugging Face hub cannot be reached from here, so nothing was fetched; profile {config.profile!r} "
            f"reads {len(repos)} repositories from it: {listed}. Run prefetch where the hub can be reached (a "
            "login node), with the HF_HOME the compute nodes use")
    for what, read in fetchers(config):
        log.info("fetching %s", what)
        try:
            read()
        except StudyError:
            raise
        except Exception as err:  # noqa: BLE001 - a gated repository, a dropped connection: one line
            raise StudyError(f"fetching {what} failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}; "
                             "for a gated repository, accept its terms on the hub and log in (hf auth login)") from None
    return hub_revisions(config)


def format_prefetch(fetched: dict[str, dict], config) -> str:
    """What prefetch did, one line per repository."""
    if not fetched:
        return (f"nothing to fetch: profile {config.profile!r} reads no model or dataset from the hub "
                f"(encoder {config.encoder.name}; data from the sample or local files)")
    lines = [f"{v['type']} {repo}: cached at commit {v['commit']}" for repo, v in fetched.items()]
    return "\n".join(lines + ["on offline compute nodes, set HF_HUB_OFFLINE=1 and the same HF_HOME; the run "
                              "reads these cached copies"])
