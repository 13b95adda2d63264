"""Reads an experiment directory into pandas and computes the reference study's tables, tests and
figures, for any run. It reads files only: no Ray, no import of sweeps/ or trainables/.

    python -m analysis report DIR --out OUT
"""

from analysis.load import Experiment, load_experiment

__all__ = ["Experiment", "load_experiment"]
