# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (xnli-study)
#     language: python
#     name: xnli-study
# ---

# %% [markdown]
# # xnli-study: results
#
# Does intermediate-task training change a multilingual encoder's cross-lingual alignment, and
# does that show in zero-shot transfer on XNLI? This section summarises the run; the sections
# after it hold the details of each stage.

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stages 1 to 4. If they have not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml` first (or `make study`). The batch run renders this
# notebook and the four stage notebooks into one `report.html`; to render it again from a run
# folder: `xnli-study report --run outputs/smoke`.
#
# On a run folder where this stage is complete, the notebook shows its results from the run folder
# without computing them again; `recompute = True` computes them (and replaces the run folder's copy
# of this notebook, so the report never shows a notebook older than its tables).

# %% tags=["parameters"]
params_path: str = "../params/smoke.yaml"  # the study profile (YAML); relative to notebooks/
run_dir: str = ""  # the run folder; empty means output_dir/run_name from the params
recompute: bool = False  # compute the stage again even when the run folder holds it complete (its units too)
overrides: str = ""  # params overrides as xnli-study run --set takes them, a YAML list (see the README)
update_run_copy: bool = True  # a stage computed here also replaces the run folder's executed copy of this notebook

# %%
from IPython.display import Markdown, display

from xnli_study import narrative, plots, summary as summaries
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("report", params_path=params_path, run_dir=run_dir, recompute=recompute, overrides=overrides,
               update_run_copy=update_run_copy)
summary = summaries.build_summary(run)

# %% [markdown]
# ## Summary

# %%
display(Markdown(narrative.narrative(summary, limits=run.config.limits)))

# %% [markdown]
# ## Accuracy by language, with uncertainty

# %%
intervals = run.read_table("accuracy_ci")
fig = plots.accuracy_with_intervals(intervals, run.read_table("accuracy"))
_ = run.show_figure("xnli_accuracy", fig)
display(Markdown(narrative.interval_caption(summary)))
narrative.show_table(narrative.interval_table(intervals), saved_as="accuracy_ci")

# %% [markdown]
# ## Each condition against the baseline
# The paired difference (condition minus `none`, on the same seeds and items) with its 95%
# bootstrap interval; with 3 seeds or more, the two-sided p-value from the same paired bootstrap
# and the p-value after Holm correction (the family is named in the summary above).

# %%
comparisons = run.read_table("comparisons")
display(Markdown(narrative.describe_comparisons(comparisons)))
if len(comparisons):
    fig = plots.delta_heatmap(comparisons)
    _ = run.show_figure("xnli_accuracy_delta", fig)
    display(Markdown("Each cell: the change in accuracy against `none`, in points (red: better, blue: "
                     "worse); `*`: significant after Holm correction, only with 3 seeds or more."))
    display(Markdown(narrative.where_the_columns_are()))
    display(narrative.show_table(narrative.comparison_table(comparisons), saved_as="comparisons"))

# %% [markdown]
# ## Alignment change against transfer change
# One point per intermediate task and non-English language: the change in retrieval at the
# headline layer and the change in XNLI accuracy, both of F_t against the baseline F[none].

# %%
points = run.read_table("alignment_vs_transfer")
if len(points):
    fig = plots.alignment_vs_accuracy(points, summary["alignment_vs_transfer"])
    _ = run.show_figure("alignment_vs_transfer", fig)
    display(Markdown("One dot per condition and language (labelled), in points; grey line: least-squares "
                     "fit, a guide for the eye; the title gives Spearman's ρ with its 95% interval from the "
                     "seed x item bootstrap, and the number of points."))
else:
    display(Markdown("Only the baseline ran: there is no change to relate."))

# %% [markdown]
# ## Training recipe
# Each optimizer step takes the effective batch: the batch per device, times the batches
# accumulated per step, times the devices that trained.

# %%
selection = run.read_table("selection")
devices = int(selection["devices"].max()) if "devices" in selection else 1
display(narrative.show_table(narrative.recipe_table(run.config.training, devices=devices)))

# %% [markdown]
# ## Published numbers for this encoder (XNLI test, zero-shot, accuracy %)

# %%
refs = summaries.references_for(summary["encoder"])
if len(refs):
    display(narrative.show_table(refs.drop(columns="hub_id")))
else:
    display(Markdown(narrative.no_published_numbers(summary["encoder"])))

# %%
record = run.finish()
