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
# # 4. Cross-lingual alignment, layer by layer
#
# For the pretrained encoder P, every intermediate encoder I_t and every final encoder F_t, on
# XNLI's deduplicated parallel sentences (distinct premises plus hypotheses, the same ids in every
# language). Sentence vector: the mean of a layer's hidden states over the sentence's real tokens,
# **special tokens and padding excluded**; each sentence encoded alone; **layer 0 is the embedding
# output**. Metrics of English against each other language: retrieval accuracy@1 (en→X, X→en and
# their mean; raw and centered), linear CKA, translation cosine margin; and a language-identity
# probe over all languages (lower = more language-neutral).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stages 1 to 3. If they have not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml --stages data intermediate transfer` first (or `make study`).
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
run = StageRun("alignment", params_path=params_path, run_dir=run_dir, recompute=recompute, overrides=overrides,
               update_run_copy=update_run_copy)

# %%
result = study.measure_alignment(run)
table, changes, layer = result["alignment"], result["changes"], result["headline_layer"]
display(Markdown(
    f"Probe set: {result['probe']['sid'].nunique()} distinct sentences per language. "
    f"Headline layer: **{layer}**, fixed in the params before the run "
    f"(`alignment.headline_layer: {run.config.alignment.headline_layer}`); the best layer is shown apart."
))

# %% [markdown]
# ## Headline numbers (mean over the non-English languages and seeds)
# At the headline layer: retrieval accuracy@1 (mean of both directions; chance 1/sentences), the
# same after centering each language, debiased CKA (the headline CKA; 0 for unrelated vectors)
# with the biased estimate beside it, the translation cosine margin (0 when translations are no
# closer than random pairs), and the language-identity probes, trained on 4/5 of the sentences and
# on 16 per language (chance 1/languages; lower is more language-neutral). Then each metric's
# best layer (`layer: value`), shown apart.

# %%
display(narrative.show_table(narrative.headline_table(table, layer=layer), saved_as="alignment"))
narrative.show_table(narrative.best_layer_table(table), saved_as="alignment")

# %% [markdown]
# ## Curves over layers

# %%
fig = plots.alignment_curves(table, headline_layer=layer)
_ = run.show_figure("alignment_curves", fig)
display(Markdown("Lines: means over the non-English languages and seeds, one per encoder (P, I[task], "
                 "F[condition]); shaded bands: the sd over seeds; dotted vertical line: the headline "
                 "layer; dashed grey line: chance (1/sentences for retrieval, 1/languages for the probes)."))

# %% [markdown]
# ## Layer x language heatmaps, raw and centered retrieval side by side

# %%
for stage in dict.fromkeys(table["stage"]):
    fig = plots.alignment_heatmaps(table, stage=stage, headline_layer=layer)
    _ = run.show_figure(f"alignment_heatmap_{stage}", fig)
display(Markdown("Each cell: a metric of English against one language at one layer, the mean over the "
                 "stage's encoders and seeds; white lines frame the headline layer. Colours span each "
                 "panel's own range."))

# %% [markdown]
# ## Changes between stages
# Intermediate minus pretrained (what the intermediate task did to P), and each final encoder
# minus the baseline's final encoder (matched by seed).

# %%
for comparison in dict.fromkeys(changes["comparison"]):
    fig = plots.alignment_change_heatmaps(changes, comparison=comparison)
    _ = run.show_figure(f"alignment_change_{comparison.split()[0]}", fig)
display(Markdown("Red: the later encoder is more aligned with English than the earlier one; blue: less. "
                 "Means over seeds (final encoders paired with the baseline's by seed)."))

# %%
record = run.finish(headline_layer=layer, n_layers=result["n_layers"])
