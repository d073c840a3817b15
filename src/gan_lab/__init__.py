"""gan-lab: a PyTorch Lightning + Hydra research template for GANs."""

__version__ = "0.1.0"
