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

# %% tags=["parameters"]
params_path: str = "../params/smoke.yaml"  # the study profile (YAML); relative to notebooks/
run_dir: str = ""  # the run folder; empty means output_dir/run_name from the params

# %%
from IPython.display import Markdown, display

from xnli_study import plots, study
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("data", params_path=params_path, run_dir=run_dir)
config = run.config
display(Markdown(f"Profile **{config.profile}**: {config.description}  \nRun folder: `{run.run_dir}`"))

# %%
tables = study.inspect_data(run)

# %% [markdown]
# ## XNLI: items, labels and premises per language

# %%
tables["xnli_counts"]

# %%
fig = plots.label_balance(tables["xnli_counts"], split=config.xnli.eval_split)
_ = run.show_figure("label_balance", fig)

# %% [markdown]
# ## Parallel structure
# Every language must hold the same items in the same order with the same labels: the probe set
# for alignment and the per-language comparison both rely on it.

# %%
tables["parallel"]

# %% [markdown]
# ## Sentence length in tokens (the encoder's tokenizer)
# `tokens_per_word` is the tokenizer's fertility; `unk_share` the share of unknown tokens. Words
# are split on spaces, so for Thai and Chinese, written without spaces, `tokens_per_word` is
# really tokens per sentence (or per space-separated chunk).

# %%
tables["token_lengths"].round(3)

# %%
fig = plots.token_lengths(tables["token_lengths"], split=config.xnli.eval_split)
_ = run.show_figure("token_lengths", fig)

# %% [markdown]
# ## Training data
# MultiNLI rows whose gold label is `-` (no annotator consensus) are dropped and counted here.

# %%
tables["training_data"]

# %% [markdown]
# ## The first XNLI dev item in every language

# %%
tables["examples"]

# %%
record = run.finish()
