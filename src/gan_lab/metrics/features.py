"""Feature extractors: uint8 images -> (features, logits), each with a protocol string.

Both sides of every comparison (real and generated) go through the same extractor, so the
only preprocessing that differs between them is the generator's float -> uint8 rounding.

The Inception network is torch-fidelity's TF-ported ``inception-v3-compat`` as wrapped by
torchmetrics, with ``antialias=False``: the image is resized to 299x299 *inside* the network by
torch-fidelity's TF1-compatible bilinear interpolation, which is what published FIDs use.
(torchmetrics' default ``antialias=True`` resizes differently and shifts FID.) Images are never
resized before they reach the network.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from gan_lab.data.transforms import convert_channels
from gan_lab.errors import UserError
from gan_lab.metrics.classifier import SmallCNN, load_classifier

WEIGHTS_ENV = "GAN_FID_WEIGHTS"
WEIGHTS_TOOL = "python ../shared/tools/fid_inception_weights.py <dir>/pt_inception-2015-12-05.pth"


class FeatureExtractor(Protocol):
    """What the metrics need from a network."""

    name: str  # short id, part of reference-cache keys
    protocol: str  # how images are turned into features, recorded next to every number
    num_features: int

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (N, C, H, W) -> (features (N, D), logits (N, K)), float32."""
        ...

    def to(self, device: torch.device | str) -> FeatureExtractor: ...


def resolve_inception_weights(path: str | None) -> str | None:
    """The configured file, else ``$GAN_FID_WEIGHTS``, else None (torch-fidelity downloads them)."""
    path = path or os.environ.get(WEIGHTS_ENV) or None
    if path is None:
        return None
    if not Path(path).expanduser().is_file():
        raise UserError(
            f"inception_weights={path!r} does not exist. Create it with `{WEIGHTS_TOOL}`, set "
            f"{WEIGHTS_ENV}=<file>, or set inception_weights=null to let torch-fidelity download them."
        )
    return str(Path(path).expanduser())


@functools.lru_cache(maxsize=8)
def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


class InceptionExtractor:
    """torch-fidelity's FID Inception-v3: 2048-d pool3 features and the 1008-way unbiased logits."""

    def __init__(self, weights_path: str | None = None, batch_size: int = 50) -> None:
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.weights_path = resolve_inception_weights(weights_path)
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=self.weights_path,
            antialias=False,  # torch-fidelity's TF1 bilinear resize to 299, as in published FIDs
        )
        # NHWC convolutions: 2x the images/s of NCHW on an AVX-512 CPU, same float32 maths
        # (features agree to ~1e-5; docs/metrics.md)
        self.net.to(memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.num_features = 2048
        weights_id = (
            f"sha256:{_file_digest(self.weights_path)}"
            if self.weights_path
            else "torch-fidelity download"
        )
        self.name = "inception-v3-compat-" + (
            weights_id.split(":")[-1] if self.weights_path else "default"
        )
        self.protocol = (
            f"torch-fidelity inception-v3-compat (TF 2015-12-05 graph, weights {weights_id}), pool3 2048-d; "
            "uint8 input (generated images rounded from [-1, 1]), grey repeated to RGB, "
            "TF1-compatible bilinear resize to 299x299 inside the network, no pre-resize"
        )

    @property
    def has_classifier_head(self) -> bool:
        """False for weights converted without the 1008-way head (its ``fc`` is NaN): no Inception Score."""
        return bool(torch.isfinite(self.net.fc.weight).all())

    def to(self, device: torch.device | str) -> InceptionExtractor:
        self.net.to(device, memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        device = self.net.fc.weight.device
        feats, logits = [], []
        with torch.autocast(device_type=device.type, enabled=False):  # the protocol is float32
            for chunk in images.split(self.batch_size):
                f, lg = self.net._torch_fidelity_forward(convert_channels(chunk, 3).to(device))
                feats.append(f.float())
                logits.append(lg.float())
        return torch.cat(feats), torch.cat(logits)


class ClassifierExtractor:
    """The in-domain classifier: its pooled features and its class logits."""

    def __init__(self, model: SmallCNN, weights_id: str, batch_size: int = 500) -> None:
        self.model = model.eval()
        self.batch_size = batch_size
        self.num_features = model.num_features
        self.num_classes = model.spec.num_classes
        self.name = f"classifier-{model.spec.dataset}-{weights_id}"
        self.protocol = (
            f"in-domain {model.spec.dataset} classifier (weights sha256:{weights_id}), {model.num_features}-d "
            f"pooled features; uint8 input resized to {model.spec.image_size}px {model.spec.channels}ch"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ClassifierExtractor:
        return cls(load_classifier(path), weights_id=_file_digest(str(path)))

    def to(self, device: torch.device | str) -> ClassifierExtractor:
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        device = self.model.head.weight.device
        with torch.autocast(device_type=device.type, enabled=False):
            outs = [self.model(chunk.to(device)) for chunk in images.split(self.batch_size)]
        return torch.cat([f for f, _ in outs]), torch.cat([lg for _, lg in outs])


class PassThrough(nn.Module):
    """Lets torchmetrics' FID/KID/IS accumulate features that were computed once, elsewhere."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features
