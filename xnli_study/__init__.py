"""xnli-study: intermediate-task training, zero-shot XNLI transfer and cross-lingual alignment.

The package holds all the logic of the study; the notebooks in ``notebooks/`` narrate and plot.
One module per concern: ``config`` and ``preflight`` (the params and their checks), ``runfolder``
(where every output lives), ``stages`` and ``pipeline`` (the stage graph and running it),
``environment`` (kernel, provenance), ``study`` (what each stage does), ``data``, ``sample`` and
``tasks`` (readers), ``models``, ``pretraining``, ``training``, ``evaluation``, ``qa``, ``alignment``,
``stats``, ``summary``,
``narrative`` and ``render`` (the report's numbers, words and HTML), ``plots`` and ``cli``.
"""

__version__ = "0.1.0"
