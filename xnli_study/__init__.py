"""xnli-study: intermediate-task training, zero-shot XNLI transfer and cross-lingual alignment.

The package holds all the logic of the study; the notebooks in ``notebooks/`` narrate and plot.
One module per concern: ``config`` (validated params), ``data`` (readers, one label space),
``sample`` (the shipped synthetic sample), ``tasks`` (intermediate-task registry), ``models``,
``training``, ``evaluation``, ``alignment``, ``plots``, ``report``, ``pipeline`` and ``cli``.
"""

__version__ = "0.1.0"
