"""docs/results.md from run directories: checkpoints picked by kimg, scored by ``gan-eval``.

``spec`` reads the YAML list of cells, ``run_reading`` reads a run directory (checkpoint
progress, TensorBoard wall times and in-training metrics), ``scoring`` runs ``gan-eval`` /
``gan-sample`` as subprocesses behind a JSON cache, ``targets`` judges the issue's targets from
the numbers, ``report`` writes the markdown and the plots, ``build`` ties them together
(``scripts/build_results.py`` is its command line). Plain Python: no Hydra, no Lightning.
"""
