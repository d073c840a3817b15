"""Data: sources on disk -> uint8 tensors in memory -> batches on the device."""

from gan_lab.data.datamodule import GANDataModule

__all__ = ["GANDataModule"]
