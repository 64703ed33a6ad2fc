"""Command line: ``xnli-study run --params params/smoke.yaml``, and helpers.

Errors a user can cause are printed as one line without a traceback; the exit code is 2 for bad
params and 1 for other failures (a stage that failed names its executed notebook).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from .environment import ensure_kernel, import_jsonschema_without_iri_grammar

import_jsonschema_without_iri_grammar()  # first: the modules below import nbformat, which imports jsonschema

from .compare import compare_runs, format_comparison
from .config import load_params
from .errors import StudyError
from .errors import ParamsError
from .pipeline import parse_shard, render_report, run_shard, run_study
from .prefetch import format_prefetch, prefetch
from .plan import format_plan, make_plan
from .preflight import check_all
from .runfolder import RunFolder
from .sample import write_sample
from .stages import STAGES


def _cmd_run(args: argparse.Namespace) -> int:
    _warn(load_params(args.params, args.set))
    if args.shard:
        clash = [flag for flag, on in (("--stages", args.stages), ("--force", args.force),
                                       ("--rebuild-caches", args.rebuild_caches)) if on]
        if clash:
            raise ParamsError(f"--shard runs the data stage and its share of the units; it takes no {clash[0]} "
                              "(use it on the run without --shard that puts the stages together)")
        run_dir = run_shard(args.params, shard=parse_shard(args.shard), out=args.out, progress=not args.quiet,
                            overrides=args.set)
        print(f"shard {args.shard} done: {run_dir}")
        return 0
    run_dir = run_study(args.params, stages=args.stages, out=args.out, force=args.force,
                        progress=not args.quiet, rebuild_caches=args.rebuild_caches, overrides=args.set)
    print(f"done: {run_dir}")
    report = RunFolder(run_dir).report_html
    if report.exists():
        print(f"report: {report}")
    return 0


def _warn(config) -> None:
    for line in config.subsampling_warnings():
        print(f"warning: {line}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_params(args.params, args.set)
    _warn(config)
    notes = check_all(config)
    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    where = " here; the run needs what the notes say" if notes else ""
    print(f"{args.params}: valid (profile {config.profile}, run folder {config.run_dir}){where}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    config = load_params(args.params, args.set)
    devices = args.devices or config.distributed.processes
    plan = make_plan(config, tokens_per_second=args.tokens_per_second, world_size=devices)
    print(format_plan(plan, config))
    if args.csv:
        plan.units.to_csv(args.csv, index=False)
        print(f"units written to {args.csv}")
    return 0


def _cmd_prefetch(args: argparse.Namespace) -> int:
    config = load_params(args.params, args.set)
    print(format_prefetch(prefetch(config), config))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    folder = write_sample(args.out, test_items=args.test_items)
    print(f"sample written to {folder}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    print(f"report: {render_report(args.run)}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    print(format_comparison(compare_runs(args.run_a, args.run_b, out=args.out, resamples=args.resamples)))
    return 0


def _cmd_kernel(args: argparse.Namespace) -> int:
    print(f"Jupyter kernel '{ensure_kernel()}' points at {sys.executable}")
    return 0


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the params file: a dotted key and a YAML value, e.g. "
                             "--set training.mnli.learning_rate=2e-5 --set 'seeds=[0,1,2]' (repeatable; validated "
                             "as the file is, recorded in the run folder's params.yaml)")


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes as one line naming the fix (exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="xnli-study",
        description="Intermediate-task training, zero-shot XNLI transfer and cross-lingual alignment.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="run the study's stage notebooks with papermill, then render the report")
    run.add_argument("--params", default="params/smoke.yaml",
                     help="the profile YAML file (default: params/smoke.yaml)")
    run.add_argument("--stages", nargs="+", choices=[s.name for s in STAGES], metavar="STAGE",
                     help=f"run only these stages, in study order ({', '.join(s.name for s in STAGES)})")
    run.add_argument("--out", help="run folder (default: output_dir/run_name from the params)")
    run.add_argument("--force", action="store_true",
                     help="run stages again even when they are complete for these params (the caches, "
                          "keyed by their content, are reused)")
    run.add_argument("--rebuild-caches", action="store_true",
                     help="delete this run's caches (pretrained tiny P, sample, tokenised data, sentence "
                          "vectors) and run every stage again")
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    run.add_argument("--shard", metavar="I/N",
                     help="run only the (condition, seed) chains whose index is I modulo N, into the shared run "
                          "folder (the data stage once, by the first shard); then run without --shard to put "
                          "the stages together")
    _add_set(run)
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check", help="validate a params file (keys, files, encoder, hub) and exit")
    check.add_argument("--params", default="params/smoke.yaml", help="the profile YAML file")
    _add_set(check)
    check.set_defaults(func=_cmd_check)

    plan = sub.add_parser("plan", help="what a run will cost (steps, tokens, FLOPs, GPU-hours, memory, disk); "
                                       "touches neither the hub nor a GPU")
    plan.add_argument("--params", default="params/smoke.yaml", help="the profile YAML file")
    plan.add_argument("--tokens-per-second", type=float,
                      help="training throughput to assume (default: the one benchmarks/training_throughput.py "
                           "measured here, else 30%% MFU of an H100)")
    plan.add_argument("--devices", type=int,
                      help="data-parallel devices per training (for steps per epoch; default: distributed.processes)")
    plan.add_argument("--csv", help="also write the per-unit table to this CSV file")
    _add_set(plan)
    plan.set_defaults(func=_cmd_plan)

    fetch = sub.add_parser("prefetch", help="download every hub model and dataset a profile reads into the Hugging "
                                            "Face cache (on a login node, for offline compute nodes)")
    fetch.add_argument("--params", default="params/smoke.yaml", help="the profile YAML file")
    _add_set(fetch)
    fetch.set_defaults(func=_cmd_prefetch)

    sample = sub.add_parser("sample", help="write the synthetic sample (XNLI-1.0 TSV, MNLI JSONL, SST-2 TSV)")
    sample.add_argument("--out", required=True, help="folder to write")
    sample.add_argument("--test-items", type=int, default=120, help="XNLI test items per language")
    sample.set_defaults(func=_cmd_sample)

    report = sub.add_parser("report", help="render the HTML report again from a run folder's executed notebooks")
    report.add_argument("--run", required=True, help="the run folder (e.g. outputs/smoke)")
    report.set_defaults(func=_cmd_report)

    compare = sub.add_parser("compare", help="accuracy and alignment of run B minus run A (same conditions and "
                                             "languages), with bootstrap intervals, paired where the runs share "
                                             "seeds and items; writes two tables and a figure")
    compare.add_argument("run_a", metavar="RUN_A", help="the first run folder (e.g. outputs/smoke)")
    compare.add_argument("run_b", metavar="RUN_B", help="the second run folder: differences are B minus A")
    compare.add_argument("--out", help="folder for the tables and the figure (default: compare_<A>_vs_<B> beside RUN_B)")
    compare.add_argument("--resamples", type=int, help="bootstrap draws (default: RUN_B's stats.resamples)")
    compare.set_defaults(func=_cmd_compare)

    kernel = sub.add_parser("kernel", help="register the 'xnli-study' Jupyter kernel for this Python")
    kernel.set_defaults(func=_cmd_kernel)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: the stages that completed are kept (manifest.json says which); run the same "
              "command again to go on", file=sys.stderr)
        return 130


def entry() -> int:
    """The ``xnli-study`` command: :func:`main`, then a process about to exit. Its objects are
    frozen out of the garbage collector's reach first, which spares the interpreter's final
    collection over everything torch and transformers loaded (about a second); exit handlers still
    run. (In-process callers, tests among them, call :func:`main`.)"""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
