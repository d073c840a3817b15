"""Looking harder at samples in `gan-sample`: the truncation trick and the memorisation check.

Truncation (``truncation=psi``): every latent entry with ``|z_i| > psi`` is redrawn until it
falls inside, i.e. z follows the standard normal restricted to [-psi, psi] per entry (Brock et
al. 2019, BigGAN). Smaller psi trades variety for fidelity; the latent dimension is unchanged.

Nearest neighbours (``nearest_neighbours.enabled=true``): each sample next to its k closest
training images, by L2 distance in a feature space: the in-domain classifier's pooled features
where one exists for the dataset (cheap, and tuned to what the images show), the FID Inception's
pool3 features, or raw pixels. Samples that sit on top of a training image are memorised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_lab.data.sources import ImageSet
from gan_lab.data.transforms import float_to_uint8
from gan_lab.errors import ConfigError
from gan_lab.metrics.classifier import default_classifier_path
from gan_lab.metrics.features import ClassifierExtractor, FeatureExtractor, InceptionExtractor

SPACES = ("auto", "classifier", "inception", "pixel")


def check_truncation(psi: Any) -> float | None:
    """None (no truncation) or a threshold > 0."""
    if psi is None:
        return None
    if (
        isinstance(psi, bool)
        or not isinstance(psi, int | float)
        or not math.isfinite(psi)
        or psi <= 0
    ):
        raise ConfigError(
            "truncation", psi, "must be a number > 0 (the |z| threshold, e.g. 0.7) or null"
        )
    return float(psi)


def truncated_normal(shape: tuple[int, ...], psi: float, generator: torch.Generator) -> Tensor:
    """Standard normal entries, those with |z| > psi redrawn until none is left."""
    z = torch.randn(shape, generator=generator)
    outside = z.abs() > psi
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > psi
    return z


def truncated_batches(
    module: Any, n: int, batch_size: int, seed: int, psi: float
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``n`` uint8 samples from truncated latents (classes uniform for conditional generators)."""
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        z = truncated_normal((b, module.latent_dim), psi, g).to(module.device)
        y = None
        if module.num_classes:
            y = torch.randint(0, module.num_classes, (b,), generator=g).to(module.device)
        yield float_to_uint8(module.generate(z, y)), y
        done += b


def pixel_features(images: Tensor) -> Tensor:
    return images.flatten(1).float() / 255


def neighbour_space(
    space: str, source: str, classifier_path: str | None, inception_weights: str | None
) -> tuple[str, FeatureExtractor | None]:
    """(name, extractor) of the feature space; ``auto``: the classifier if the dataset has one."""
    if space not in SPACES:
        raise ConfigError("nearest_neighbours.space", space, f"choose one of {', '.join(SPACES)}")
    classifier = (
        Path(classifier_path).expanduser() if classifier_path else default_classifier_path(source)
    )
    if space == "auto":
        space = "classifier" if classifier.is_file() else "pixel"
    if space == "classifier":
        if not classifier.is_file():
            raise ConfigError(
                "nearest_neighbours.classifier_path",
                classifier_path,
                f"no classifier for data.source={source!r} at {classifier}; use space=pixel or inception",
            )
        return space, ClassifierExtractor.from_file(classifier)
    if space == "inception":
        return space, InceptionExtractor(inception_weights)
    return space, None


def features_of(images: Tensor, extractor: FeatureExtractor | None, batch_size: int) -> Tensor:
    chunks = images.split(batch_size)
    if extractor is None:
        return torch.cat([pixel_features(c) for c in chunks])
    return torch.cat([extractor(c)[0].float().cpu() for c in chunks])


def nearest_neighbours(
    queries: Tensor,
    train: ImageSet,
    extractor: FeatureExtractor | None,
    k: int,
    batch_size: int = 500,
) -> tuple[Tensor, Tensor]:
    """(indices, distances), each (len(queries), k): the k closest training images, nearest first.

    The training set is scanned in chunks, keeping a running top-k, so its features never sit in
    memory all at once.
    """
    q = features_of(queries, extractor, batch_size).double()
    best_d = torch.full((len(q), 0), math.inf, dtype=torch.float64)
    best_i = torch.zeros((len(q), 0), dtype=torch.long)
    for start in range(0, len(train), batch_size):
        chunk = train.images[start : start + batch_size]
        d = torch.cdist(q, features_of(chunk, extractor, batch_size).double())
        index = torch.arange(start, start + len(chunk)).expand(len(q), -1)
        d, index = torch.cat([best_d, d], 1), torch.cat([best_i, index], 1)
        keep = d.topk(min(k, d.shape[1]), dim=1, largest=False)
        best_d, best_i = keep.values, index.gather(1, keep.indices)
    return best_i, best_d.float()


def neighbour_grid(samples: Tensor, train: ImageSet, indices: Tensor) -> Tensor:
    """uint8 images in rows of k + 1: each sample, then its neighbours, nearest first."""
    rows = [torch.cat([s[None], train.images[i]]) for s, i in zip(samples, indices)]
    return torch.cat(rows)


__all__ = [
    "SPACES",
    "check_truncation",
    "nearest_neighbours",
    "neighbour_grid",
    "neighbour_space",
    "truncated_batches",
    "truncated_normal",
]


def write_nearest_neighbours(
    settings: Any, checkpoint: Any, samples: Tensor, out: Path, data_overrides: dict[str, Any]
) -> dict[str, Path]:
    """``nearest_neighbours.png`` (rows of sample + k neighbours) and ``.json`` (indices, distances)."""
    import json

    from torchvision.utils import save_image

    from gan_lab.metrics.reference import reference_subset
    from gan_lab.trained_model import build_datamodule

    rows, k = settings.rows, settings.k
    for key, value in (("rows", rows), ("k", k)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"nearest_neighbours.{key}", value, "must be an integer >= 1")
    datamodule = build_datamodule(checkpoint.run_config["data"], data_overrides)
    space, extractor = neighbour_space(
        settings.space, datamodule.source, settings.classifier_path, settings.inception_weights
    )
    train = reference_subset(datamodule.load_split(settings.split), settings.max_train)
    queries = samples[:rows]
    indices, distances = nearest_neighbours(queries, train, extractor, k, settings.batch_size)
    grid = neighbour_grid(queries, train, indices).float() / 255
    save_image(grid, out / "nearest_neighbours.png", nrow=min(k, len(train)) + 1)
    report = {
        "space": space,
        "protocol": extractor.protocol if extractor else "raw pixels / 255, L2",
        "split": settings.split,
        "n_train": len(train),
        "neighbours": [
            {"sample": i, "train_index": idx.tolist(), "distance": d.tolist()}
            for i, (idx, d) in enumerate(zip(indices, distances))
        ],
    }
    (out / "nearest_neighbours.json").write_text(json.dumps(report, indent=2) + "\n")
    return {"nearest_neighbours": out / "nearest_neighbours.png"}
