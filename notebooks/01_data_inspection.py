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
# # 1. Data inspection
#
# This stage loads every data source the profile names, prepares the pretrained encoder P (for the
# `tiny` encoder: a WordPiece tokenizer trained on the training text and a small BERT built from a
# config), and describes the data: items and label balance per language, sentence length in
# tokens of the encoder's tokenizer, the share of unknown tokens, and whether the languages are
# parallel (the same items, with the same labels, in every language).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** nothing; this is the first stage. Batch runs: `xnli-study run --params params/smoke.yaml`
# (or `make study`) runs every stage in order. Opened in JupyterLab, this notebook runs top to
# bottom on the default profile as it is.
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
run = StageRun("data", params_path=params_path, run_dir=run_dir, recompute=recompute, overrides=overrides,
               update_run_copy=update_run_copy)
config = run.config
display(Markdown(narrative.profile_line(config.profile, config.description, run.run_dir)))

# %%
tables = study.inspect_data(run)

# %% [markdown]
# ## XNLI: items, labels and premises per language
# The evaluation split; every split read is in the run folder's `xnli_counts` table.

# %%
split = config.xnli.eval_split
narrative.show_table(tables["xnli_counts"].query("split == @split"), saved_as="xnli_counts")

# %%
fig = plots.label_balance(tables["xnli_counts"], split=config.xnli.eval_split)
_ = run.show_figure("label_balance", fig)
display(Markdown("Stacked bars: the number of items with each gold label, per language, in the evaluation split."))

# %% [markdown]
# ## Parallel structure
# Every language must hold the same items in the same order with the same labels: the probe set
# for alignment and the per-language comparison both rely on it.

# %%
narrative.show_table(tables["parallel"], saved_as="parallel")

# %% [markdown]
# ## Sentence length in tokens (the encoder's tokenizer)
# `tokens_per_word` is the tokenizer's fertility; `unk_share` the share of unknown tokens. Words
# are split on spaces, so for Thai and Chinese, written without spaces, `tokens_per_word` is
# really tokens per sentence (or per space-separated chunk). Premises of the evaluation split
# here; every split and field is in the run folder's `token_lengths` table.

# %%
narrative.show_table(tables["token_lengths"].query("split == @split and field == 'premise'"),
                     saved_as="token_lengths")

# %%
fig = plots.token_lengths(tables["token_lengths"], split=config.xnli.eval_split)
_ = run.show_figure("token_lengths", fig)
display(Markdown("Bars: the mean number of the encoder's tokens per sentence (special tokens excluded), "
                 "distinct premises and all hypotheses apart."))

# %% [markdown]
# ## Training data
# For MultiNLI and each intermediate task: rows read, rows dropped (no gold label: MultiNLI's `-`,
# no annotator consensus; no usable answer: a test split's empty label, an answer not found in its
# context) and rows used after subsampling, with the label balance.

# %%
narrative.show_table(tables["training_data"], saved_as="training_data")

# %% [markdown]
# ## The first XNLI dev item in every language

# %%
narrative.show_table(tables["examples"], saved_as="xnli_examples")

# %%
record = run.finish()
