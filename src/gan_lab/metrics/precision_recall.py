"""Improved precision and recall (Kynkaanniemi et al. 2019) with density and coverage (Naeem et al.
2020), on Inception features.

FID folds fidelity and diversity into one number; these separate them. A collapsed generator keeps
a decent precision (its few modes look real) while its recall and coverage fall towards 0, which is
the failure a GAN researcher most needs to see. Each real (or fake) feature gets a ball whose radius
is the distance to its k-th nearest neighbour in its own set:

- precision: fraction of fakes inside at least one real ball;
- recall: fraction of reals inside at least one fake ball;
- density: real balls containing each fake, averaged and divided by k (about 1 for matching sets,
  above 1 when fakes crowd into dense real regions);
- coverage: fraction of reals whose own ball holds at least one fake.

All four depend on k and on the sample counts, which the protocol records. Distances are computed
in row chunks so 10k x 10k sets never materialise a full matrix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from gan_lab.metrics.registry import GeneratorMetric, MetricResult, register_metric, sample_counts

CHUNK_ROWS = 1024


def _chunked_distances(rows: Tensor, cols: Tensor) -> list[tuple[slice, Tensor]]:
    return [
        (slice(i, i + CHUNK_ROWS), torch.cdist(rows[i : i + CHUNK_ROWS], cols))
        for i in range(0, len(rows), CHUNK_ROWS)
    ]


def knn_radii(features: Tensor, k: int) -> Tensor:
    """Distance from each point to its k-th nearest *other* point of the same set."""
    if len(features) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    radii = torch.empty(len(features), dtype=features.dtype, device=features.device)
    for rows, distances in _chunked_distances(features, features):
        radii[rows] = distances.kthvalue(k + 1, dim=1).values  # +1: the point itself is at 0
    return radii


def precision_recall_density_coverage(real: Tensor, fake: Tensor, k: int = 3) -> dict[str, float]:
    """The four scores of ``fake`` against ``real`` (both ``(n, d)`` feature matrices)."""
    real, fake = real.float(), fake.float()
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    fakes_in_real_balls = torch.zeros(len(fake), device=fake.device)
    real_covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for rows, distances in _chunked_distances(fake, real):  # (fake chunk, real)
        inside = distances <= real_radii[None, :]
        fakes_in_real_balls[rows] = inside.sum(dim=1).float()
        real_covered |= inside.any(dim=0)
    reals_in_fake_balls = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for rows, distances in _chunked_distances(real, fake):  # (real chunk, fake)
        reals_in_fake_balls[rows] = (distances <= fake_radii[None, :]).any(dim=1)
    return {
        "precision": float((fakes_in_real_balls > 0).float().mean()),
        "recall": float(reals_in_fake_balls.float().mean()),
        "density": float(fakes_in_real_balls.mean() / k),
        "coverage": float(real_covered.float().mean()),
    }


class PrecisionRecall(Metric):
    """Keeps the features (gathered across DDP ranks at compute) and scores them."""

    full_state_update = False

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"precision/recall k={k!r} must be an integer >= 1, e.g. 3")
        self.k = k
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features.float())

    def compute(self) -> dict[str, float]:
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        return precision_recall_density_coverage(real, fake, self.k)

    def reset(self) -> None:
        """Forgets the generated features, keeps the reference (as FID's reset_real_features=False)."""
        real = list(self.real_features)  # reset() clears the lists in place
        super().reset()
        self.real_features = real


@register_metric
class PrecisionRecallMetric(GeneratorMetric):
    """The four scores on Inception features; ``k`` is the nearest-neighbour rank of the balls."""

    name, space, needs_real = "precision_recall", "inception", True

    def __init__(self, k: int = 3) -> None:
        self.k = k

    def build(self, extractor: Any) -> Metric:
        return PrecisionRecall(self.k)

    def update_fake(self, features: Tensor, logits: Tensor, requested: Tensor | None) -> None:
        self.state.update(features.double(), real=False)

    def compute(self, extractor: Any) -> MetricResult:
        n_real, n_fake = sample_counts(self.state)
        detail = (
            f"improved precision/recall (Kynkaanniemi et al. 2019), density/coverage (Naeem et al. "
            f"2020), k={self.k} nearest neighbours, n_real={n_real}, n_fake={n_fake}"
        )
        return self.result(self.state.compute(), detail, extractor)
