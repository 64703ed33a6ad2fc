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
# # 2. Intermediate training
#
# For each intermediate task t and seed, P is fine-tuned on t with a task head. Only the encoder
# is saved (`models/<task>/seed<k>/intermediate`): the task head is dropped, and the MNLI stage puts
# a fresh head on it. The baseline condition `none` skips this stage (I_none = P). The alignment
# tasks (`parallel_align`, `lexical_align`) have no head: they train the encoder alone, pulling each
# English sentence or word towards its translation at one layer (symmetric InfoNCE over the batch).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stage 1 (data inspection). If it has not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml --stages data` first (or `make study`).
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

from xnli_study import narrative, plots, study
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("intermediate", params_path=params_path, run_dir=run_dir, recompute=recompute, overrides=overrides,
               update_run_copy=update_run_copy)

# %%
tables = study.train_intermediate(run)

# %% [markdown]
# ## Results
# Each task's score on a held-out tenth of its data, after the last epoch: accuracy for
# classification and multiple choice (chance beside it), SQuAD exact match and F1 per question for
# extractive QA (best span over the question's context windows; no chance level). For the
# alignment tasks: top-1 retrieval English → X at the task's layer among the held-out pairs of each
# language (a tenth of the English sentences or words, never trained on in any language), after
# training and for P, with chance = 1 / pairs.

# %%
display(Markdown(narrative.describe_intermediate(tables["intermediate_results"])))
narrative.show_table(tables["intermediate_results"], saved_as="intermediate_results")

# %%
if len(tables["intermediate_log"]):
    fig = plots.training_curves(tables["intermediate_log"], title="intermediate task")
    _ = run.show_figure("intermediate_training", fig)
    display(Markdown("One line per task and seed. Left: training loss per logged step. Right, where "
                     "the task has a held-out slice: its score at each evaluation (for extractive QA, "
                     "the share of context windows whose start and end tokens are both right, a "
                     "monitoring signal, not SQuAD's exact match)."))

# %%
record = run.finish()
