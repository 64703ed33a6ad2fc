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
# # 3. English MultiNLI fine-tuning and zero-shot XNLI transfer
#
# For each condition and seed: the encoder of I_t (P for `none`) gets a fresh 3-way head and is
# fine-tuned on English MultiNLI. The checkpoint is selected on **English** XNLI dev only; the
# model never sees a non-English NLI label. It is then evaluated on every XNLI language.
# Per-example predictions are kept (`tables/predictions.parquet`).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stages 1 and 2. If they have not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml --stages data intermediate` first (or `make study`).

# %% tags=["parameters"]
params_path: str = "../params/smoke.yaml"  # the study profile (YAML); relative to notebooks/
run_dir: str = ""  # the run folder; empty means output_dir/run_name from the params

# %%
from IPython.display import Markdown, display

from xnli_study import narrative, plots, study
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("transfer", params_path=params_path, run_dir=run_dir)

# %%
tables = study.train_and_evaluate_transfer(run)

# %% [markdown]
# ## Accuracy by language (mean over seeds)

# %%
display(Markdown(narrative.describe_transfer(tables["transfer_summary"])))
tables["accuracy_mean"].pivot(index="condition", columns="lang", values="mean").round(3)

# %%
fig = plots.accuracy_by_language(tables["accuracy"])
_ = run.show_figure("xnli_accuracy_by_seed", fig)

# %% [markdown]
# Intervals and the comparisons with the baseline are computed from the per-example predictions
# in the results section (the first section of the report, `05_report`).

# %% [markdown]
# ## Transfer summary per seed
# `transfer_gap` = accuracy on English minus the mean over the other languages.

# %%
tables["transfer_summary"].round(4)

# %% [markdown]
# ## Model selection on English dev

# %%
tables["selection"]

# %%
fig = plots.training_curves(tables["mnli_log"], title="MNLI")
_ = run.show_figure("mnli_training", fig)

# %%
record = run.finish()
