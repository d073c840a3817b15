"""The project's FID / KID on real images against torch-fidelity's own calculate_metrics (slow).

Both use the same Inception weights (GAN_FID_WEIGHTS); run with
    GAN_FID_WEIGHTS=<file> GAN_DATA_DIR=../shared/data pytest -m slow tests/test_metrics_fidelity.py
"""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.data import Dataset

from gan_lab.data import GANDataModule
from gan_lab.data.sources import CIFAR10, SyntheticShapes
from gan_lab.metrics.features import InceptionExtractor
from gan_lab.metrics.inception_metrics import KID
from gan_lab.metrics.suite import MetricSuite
from tests.conftest import CIFAR_AVAILABLE, CIFAR_FOLDER

FID_WEIGHTS = os.environ.get("GAN_FID_WEIGHTS")
N = 64  # per set: ~2 x 2 x 64 Inception passes, a few minutes on 2 CPU cores


class Uint8Images(Dataset):
    """What torch-fidelity reads: uint8 CHW tensors, RGB."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def two_real_sets() -> tuple[torch.Tensor, torch.Tensor]:
    if CIFAR_AVAILABLE:
        dm = GANDataModule(source=CIFAR10(), path=str(CIFAR_FOLDER), image_size=32, channels=3)
    else:
        dm = GANDataModule(source=SyntheticShapes(4 * N), image_size=32, channels=3)
    return dm.load_split("train").images[:N], dm.load_split("test").images[:N]


@pytest.mark.slow
@pytest.mark.skipif(not FID_WEIGHTS, reason="set GAN_FID_WEIGHTS to the FID Inception weights file")
def test_fid_and_kid_match_torch_fidelity_calculate_metrics() -> None:
    import torch_fidelity

    a, b = two_real_sets()
    suite = MetricSuite(
        ["fid", KID(subsets=1, subset_size=N)], {"inception": InceptionExtractor(FID_WEIGHTS)}
    )
    suite.add_real(a)
    suite.add_fake(b)
    ours = suite.compute()
    theirs = torch_fidelity.calculate_metrics(
        input1=Uint8Images(b), input2=Uint8Images(a), cuda=False, fid=True, kid=True,
        kid_subsets=1, kid_subset_size=N, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=FID_WEIGHTS, batch_size=32, verbose=False,
    )  # fmt: skip
    print(
        f"FID ours {ours['fid'].values['fid']:.6f} torch-fidelity {theirs['frechet_inception_distance']:.6f}"
    )
    print(
        f"KID ours {ours['kid'].values['kid']:.8f} torch-fidelity {theirs['kernel_inception_distance_mean']:.8f}"
    )
    assert ours["fid"].values["fid"] == pytest.approx(
        theirs["frechet_inception_distance"], abs=1e-2
    )
    assert ours["kid"].values["kid"] == pytest.approx(
        theirs["kernel_inception_distance_mean"], abs=1e-4
    )
