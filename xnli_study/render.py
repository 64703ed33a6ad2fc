"""``report.html``: the executed stage notebooks stitched into one self-contained page.

The results section (``05_report``) comes first, then the four stage notebooks. nbconvert does the
work with its own machinery: ``TagRemovePreprocessor`` drops the parameter cells and the notebook
instructions (tags ``parameters``, ``injected-parameters``, ``hide-in-report``), two small
preprocessors drop stderr (progress bars, warnings) and give every figure its alternative text,
and a template derived from JupyterLab's leaves out every script the page would fetch from
elsewhere (RequireJS, MathJax, Mermaid, widgets). Figures are embedded as PNG: the file stands alone.
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

from . import faults
from .errors import StudyError
from .files import atomic_path, read_json
from .runfolder import RunFolder
from .stages import REPORT_ORDER, STAGE_BY_NAME

HIDDEN_TAGS = ("parameters", "injected-parameters", "hide-in-report")
TEMPLATE = "xnli_study_report.html.j2"
#: JupyterLab's page without the scripts it would load from a CDN (none is needed: no widgets,
#: no LaTeX, no diagrams; figures are PNG)
TEMPLATE_SOURCE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class DropStderr(Preprocessor):
    """Remove stderr streams (progress bars, logging, warnings) from every code cell."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        return cell, resources


class FigureAltText(Preprocessor):
    """Show each PNG output as an ``<img>`` with its alternative text (``metadata.alt`` as
    :meth:`StageRun.show_figure` sets it), which the lab template would otherwise drop."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [self._with_alt(o) for o in cell.outputs]
        return cell, resources

    @staticmethod
    def _with_alt(output):
        data = output.get("data", {})
        if "image/png" not in data:
            return output
        alt = output.get("metadata", {}).get("image/png", {}).get("alt") or "figure"
        png = data["image/png"].replace("\n", "")
        return nbformat.v4.new_output(
            "display_data",
            data={"text/html": f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt, quote=True)}">'},
        )


class DropSilentCode(Preprocessor):
    """Remove code cells that show nothing once their input is hidden (no outputs left)."""

    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.outputs]
        return nb, resources


def merged_notebook(run_dir: str | Path):
    """The executed notebooks of a run, in report order, as one notebook."""
    folder = RunFolder(run_dir)
    merged = None
    for stage in REPORT_ORDER:
        path = folder.executed(STAGE_BY_NAME[stage].notebook)
        if not path.exists():
            raise StudyError(f"{path} is missing: run the study before rendering the report "
                             f"(xnli-study run --params {folder.params} --out {folder.root})")
        nb = nbformat.read(path, as_version=4)
        if merged is None:
            merged = nbformat.v4.new_notebook(metadata=nb.metadata)
        merged.cells.extend(nb.cells)
    return merged


def report_title(run_dir: str | Path) -> str:
    try:
        return f"xnli-study report: {read_json(RunFolder(run_dir).summary)['profile']}"
    except (OSError, ValueError, KeyError):
        return "xnli-study report"


def exporter() -> HTMLExporter:
    """The HTML exporter of the report: preprocessors, template, hidden code and prompts."""
    export = HTMLExporter(template_name="lab", template_file=TEMPLATE,
                          extra_loaders=[DictLoader({TEMPLATE: TEMPLATE_SOURCE})])
    export.exclude_input = True
    export.exclude_input_prompt = True
    export.exclude_output_prompt = True
    export.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS, enabled=True), enabled=True)
    export.register_preprocessor(DropStderr(enabled=True), enabled=True)
    export.register_preprocessor(FigureAltText(enabled=True), enabled=True)
    export.register_preprocessor(DropSilentCode(enabled=True), enabled=True)
    return export


def build_report(run_dir: str | Path) -> Path:
    """Render ``report.html`` from the run's executed notebooks; return its path. Written
    atomically: a failed render leaves no partial file."""
    folder = RunFolder(run_dir)
    nb = merged_notebook(folder.root)
    nb.metadata["title"] = report_title(folder.root)
    body, _ = exporter().from_notebook_node(nb)
    with atomic_path(folder.report_html) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            half = len(body) // 2
            out.write(body[:half])
            out.flush()
            faults.reached("render")  # a test kills the run here, with the report half written
            out.write(body[half:])
    return folder.report_html
