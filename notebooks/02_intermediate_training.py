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
# a fresh head on it. The baseline condition `none` skips this stage (I_none = P).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stage 1 (data inspection). If it has not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml --stages data` first (or `make study`).

# %% tags=["parameters"]
params_path: str = "../params/smoke.yaml"  # the study profile (YAML); relative to notebooks/
run_dir: str = ""  # the run folder; empty means output_dir/run_name from the params

# %%
from IPython.display import Markdown, display

from xnli_study import narrative, plots, study
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("intermediate", params_path=params_path, run_dir=run_dir)

# %%
tables = study.train_intermediate(run)

# %% [markdown]
# ## Results
# Accuracy on a held-out tenth of each task's data, after the last epoch.

# %%
display(Markdown(narrative.describe_intermediate(tables["intermediate_results"])))
tables["intermediate_results"]

# %%
if len(tables["intermediate_log"]):
    fig = plots.training_curves(tables["intermediate_log"], title="intermediate task")
    _ = run.show_figure("intermediate_training", fig)

# %%
record = run.finish()
