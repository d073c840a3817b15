"""Precision / recall / density / coverage: the definitions, the failure they exist to show (mode
collapse), and the suite plumbing (reference kept across evaluations, DDP shards merge exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gan_lab.metrics.precision_recall as pr
from gan_lab.metrics.precision_recall import precision_recall_density_coverage
from gan_lab.metrics.suite import MetricSuite
from tests.test_metrics import ProjectionExtractor, images


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The papers' definitions, written out with full distance matrices."""
    dist = lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # noqa: E731
    real_radii = np.sort(dist(real, real), axis=1)[:, k]
    fake_radii = np.sort(dist(fake, fake), axis=1)[:, k]
    fake_real = dist(fake, real)  # (n_fake, n_real)
    inside = fake_real <= real_radii[None, :]
    return {
        "precision": inside.any(axis=1).mean(),
        "recall": (fake_radii[None, :] >= fake_real.T).any(axis=1).mean(),
        "density": inside.sum(axis=1).mean() / k,
        "coverage": (fake_real.min(axis=0) <= real_radii).mean(),
    }


def features(n: int, seed: int, shift: float = 0.0, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


@pytest.mark.parametrize("k", [1, 3, 5])
def test_scores_match_the_definitions_whatever_the_chunking(k: int, monkeypatch) -> None:
    real, fake = features(120, 0), features(90, 1, shift=0.7)
    expected = brute_force(real.double().numpy(), fake.double().numpy(), k)
    monkeypatch.setattr(pr, "CHUNK_ROWS", 17)  # chunks that do not divide the set sizes
    got = precision_recall_density_coverage(real, fake, k)
    assert got == pytest.approx(expected, abs=1e-6)
    assert 0.05 < got["precision"] < 0.95  # a partial overlap: no value is trivially 0 or 1


def test_a_collapsed_generator_keeps_precision_and_loses_recall_and_coverage() -> None:
    real = features(400, 2)
    collapsed = real[:1] + 1e-3 * features(400, 3)  # every sample near one real point
    healthy = features(400, 4)
    bad, good = (precision_recall_density_coverage(real, f) for f in (collapsed, healthy))
    assert bad["precision"] == 1.0 and good["precision"] > 0.6
    assert bad["recall"] < 0.05 < 0.6 < good["recall"]
    assert bad["coverage"] < 0.05 < 0.6 < good["coverage"]


def test_disjoint_sets_score_zero_and_identical_sets_score_one() -> None:
    real = features(200, 5)
    far = precision_recall_density_coverage(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = precision_recall_density_coverage(real, real.clone())
    assert (same["precision"], same["recall"], same["coverage"]) == (1.0, 1.0, 1.0)


def test_k_must_be_smaller_than_the_sets() -> None:
    with pytest.raises(ValueError, match="k=3 needs more than 3 samples"):
        precision_recall_density_coverage(features(3, 0), features(10, 1), k=3)


def test_suite_keeps_the_reference_between_evaluations_and_merges_ranks_exactly() -> None:
    ext = ProjectionExtractor(16)
    real, near, far = images(150, 6), images(150, 7), images(150, 8, shift=60)
    suite = MetricSuite(["precision_recall"], {"inception": ext})
    suite.add_real(real)
    suite.add_fake(near)
    first = suite.compute()["precision_recall"]
    suite.reset_fake()
    suite.add_fake(far)
    second = suite.compute()["precision_recall"].values
    assert "k=3" in first.protocol and "n_real=150, n_fake=150" in first.protocol
    assert second["recall"] < first.values["recall"]  # the shifted set covers less of the reals

    ranks = [MetricSuite(["precision_recall"], {"inception": ext}) for _ in range(2)]
    for rank, rank_suite in enumerate(ranks):
        rank_suite.add_real(real[rank::2])
        rank_suite.add_fake(near[rank::2])
    ranks[0].metrics["precision_recall"].merge_state(ranks[1].metrics["precision_recall"])
    merged = ranks[0].compute()["precision_recall"].values
    # the same sets in another order: k-NN balls do not depend on the order
    assert merged == pytest.approx(first.values, abs=1e-9)
