"""Lightning callbacks: sample grids, the run config inside checkpoints."""

from gan_lab.callbacks.periodic_metrics import GeneratorMetrics
from gan_lab.callbacks.run_config import RunConfigInCheckpoint
from gan_lab.callbacks.sample_grid import SampleGrid

__all__ = ["GeneratorMetrics", "RunConfigInCheckpoint", "SampleGrid"]
