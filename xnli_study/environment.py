"""Environment chores: the project's Jupyter kernel, provenance (git commit, package versions) and
the set-up every stage notebook's kernel runs first."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from .runfolder import RUN_FOLDER_VERSION
from .config import StudyConfig
from .errors import StudyError
from .files import write_text

log = logging.getLogger("xnli_study")

KERNEL_NAME = "xnli-study"
KERNEL_DISPLAY = "Python (xnli-study)"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
#: packages whose versions every manifest records
PACKAGES = ("xnli-study", "torch", "transformers", "tokenizers", "datasets", "accelerate", "numpy",
            "pandas", "scipy", "scikit-learn", "seaborn", "matplotlib", "papermill", "nbconvert")


def import_jsonschema_without_iri_grammar() -> None:
    """Import ``jsonschema`` in this process without its optional IRI format checker.

    When the ``rfc3987-syntax`` package is installed (Jupyter's ``jsonschema[format-nongpl]``
    brings it), importing ``jsonschema`` builds that checker by compiling 38 Lark grammars: 2 to 4
    seconds on two cores, paid by every ``xnli-study`` command, since nbformat (papermill, nbconvert)
    imports ``jsonschema``. Nothing here checks an IRI (notebook schemas have no such format), so
    the command line calls this first. Only ``jsonschema``'s table of format checkers in this
    process is affected: ``rfc3987_syntax`` itself stays importable. Nothing happens when
    ``jsonschema`` is already imported.
    """
    if "jsonschema" in sys.modules:
        return
    missing = object()
    saved = sys.modules.get("rfc3987_syntax", missing)
    sys.modules["rfc3987_syntax"] = None  # an import of it raises ImportError: jsonschema skips the checker
    try:
        import jsonschema  # noqa: F401
    except ImportError:  # not installed: nbformat will say so where it is needed
        pass
    finally:
        if saved is missing:
            del sys.modules["rfc3987_syntax"]
        else:
            sys.modules["rfc3987_syntax"] = saved


def ensure_kernel() -> str:
    """Register the ``xnli-study`` Jupyter kernel for this Python if it is missing or stale."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(KERNEL_NAME)
        if (Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
                and "--IPKernelApp.log_level=CRITICAL" in spec.argv):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    folder = Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY, prefix=sys.prefix))
    # the kernel's own log (e.g. "running over TCP without encryption") would otherwise interleave
    # with every batch run's output; errors in cells still reach the notebook and the CLI
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"] = [*spec["argv"], "--IPKernelApp.log_level=CRITICAL"]
    write_text(spec_file, json.dumps(spec, indent=1))
    log.info("registered Jupyter kernel %r for %s", KERNEL_NAME, sys.executable)
    return KERNEL_NAME


def git_commit() -> str | None:
    """The project's git commit, with ``+uncommitted`` when the package, notebooks or params differ
    from it; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--",
                                "xnli_study", "notebooks", "params"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def manifest_base(config: StudyConfig) -> dict:
    """The provenance part of a run's manifest (stages are added as they run)."""
    return {
        "run_folder_version": RUN_FOLDER_VERSION,
        "profile": config.profile, "run_name": config.run_name, "fingerprint": config.fingerprint(),
        "seeds": config.seeds, "encoder": config.encoder.name, "conditions": config.conditions,
        "git_commit": git_commit(), "python": platform.python_version(),
        "platform": platform.platform(), "packages": package_versions(), "stages": {},
    }


def setup_notebook() -> None:
    """Prepare a stage notebook's kernel: plain progress logging (one line per step), and a longer
    GIL switch interval. The kernel's I/O threads otherwise contend for the GIL with training's
    Python-heavy loop and slow it by a third; results do not change. Tables show text whole."""
    sys.setswitchinterval(0.05)
    # to stderr: shown while the notebook runs, left out of the rendered report
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # example sentences are shown whole, not cut at 50 characters (pandas escapes their markup)
    pd.set_option("display.max_colwidth", None)
    one_line_errors()


def one_line_errors() -> None:
    """In an IPython kernel, show the errors a user can cause (:class:`StudyError`: a stage not
    ready, bad params, missing data) as their one-line message, not a traceback wall; the cell
    still fails, so papermill and the CLI report it. Other errors keep their traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def show(self, etype, value, tb, tb_offset=None):
        self.showtraceback((etype, value, tb), exception_only=True)

    shell.set_custom_exc((StudyError,), show)
