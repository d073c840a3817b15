"""The small in-domain classifier behind the cheap training-time metrics, and its weights files.

A few conv layers with BatchNorm: accurate enough on MNIST / CIFAR-10 to judge samples
(mode coverage, class-conditional accuracy, a Fréchet distance in its feature space) and fast
enough on a CPU to run every few hundred steps. Plain PyTorch: no Lightning, no Hydra.

A weights file ``<name>.pt`` travels with ``<name>.json`` (dataset, test accuracy, sha256 of
the ``.pt``); :func:`load_classifier` refuses a file whose checksum does not match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from gan_lab.data.transforms import convert_channels, resize_uint8
from gan_lab.errors import UserError

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


@dataclass
class ClassifierSpec:
    """Everything needed to rebuild the network and feed it the images it was trained on."""

    dataset: str
    image_size: int
    channels: int
    num_classes: int
    stem: int = 16
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    class_names: list[str] = field(default_factory=list)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """conv at the input resolution, then pool, so the second conv runs on 4x fewer pixels."""
    return nn.Sequential(
        _conv(c_in, c_out), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        _conv(c_out, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )  # fmt: skip


class SmallCNN(nn.Module):
    """A conv stem, blocks of (conv, max-pool, conv) with BN, global average pool, a linear head.

    ``features`` is the pooled vector before the head: the space of the classifier Fréchet distance.
    """

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = [
            _conv(spec.channels, spec.stem),
            nn.BatchNorm2d(spec.stem),
            nn.ReLU(inplace=True),
        ]
        c_in = spec.stem
        for width in spec.widths:
            layers.append(_block(c_in, width))
            c_in = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, spec.num_classes)
        self.register_buffer("mean", torch.tensor(127.5))
        self.register_buffer("std", torch.tensor(64.0))

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 images of any size / channel count -> the float input this network was trained on."""
        if images.dtype != torch.uint8:
            raise ValueError(f"the classifier expects uint8 images, got {images.dtype}")
        images = convert_channels(resize_uint8(images, self.spec.image_size), self.spec.channels)
        return (images.float() - self.mean) / self.std

    def forward_float(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) of already prepared float images."""
        feats = self.body(x)
        return feats, self.head(feats)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) of uint8 images, in float32 whatever autocast is active."""
        feats, logits = self.forward_float(self.prepare(images))
        return feats.float(), logits.float()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_classifier(model: SmallCNN, path: Path, info: dict[str, object]) -> dict[str, object]:
    """Write ``path`` (.pt, weights only) and its ``.json`` card with the checksum; returns the card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"spec": asdict(model.spec), "state_dict": state}, path)
    card = {**info, "spec": asdict(model.spec), "weights": path.name, "sha256": sha256_of(path)}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def default_classifier_path(dataset: str) -> Path:
    """The committed weights for a dataset source name (``mnist``, ``cifar10``)."""
    return ASSETS_DIR / f"{dataset}_classifier.pt"


def load_classifier(path: str | Path, verify: bool = True) -> SmallCNN:
    """The network in eval mode; with ``verify`` the sha256 must match the ``.json`` card beside it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"classifier weights {str(path)!r} do not exist; train them with scripts/train_classifier.py"
        )
    card_file = path.with_suffix(".json")
    if verify:
        if not card_file.is_file():
            raise UserError(
                f"classifier card {card_file} is missing; re-run scripts/train_classifier.py"
            )
        expected = json.loads(card_file.read_text())["sha256"]
        if sha256_of(path) != expected:
            raise UserError(
                f"classifier weights {path} do not match the sha256 in {card_file.name}; re-train or re-fetch them"
            )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = SmallCNN(ClassifierSpec(**blob["spec"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
