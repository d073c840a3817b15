"""The training-health signals as numbers: sample diversity and a window of the step's scalars.

Plain computations with no Lightning in them, so they can be tested on scripted sequences;
``callbacks/health_monitor.py`` decides when to read them and what to do about them.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Iterator

import torch
from torch import Tensor


def mean_pairwise_distance(images: Tensor) -> float:
    """Mean L2 distance between distinct images, per sqrt(pixel): 0 means all images are equal."""
    flat = images.detach().float().flatten(1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    distances = torch.cdist(flat, flat)
    return float(distances.sum() / (n * (n - 1)) / flat.shape[1] ** 0.5)


def diversity_ratio(fake: Tensor, real: Tensor) -> float:
    """Diversity of generated images relative to real ones (about 1 healthy, near 0 collapsed)."""
    real_spread = mean_pairwise_distance(real)
    return mean_pairwise_distance(fake) / real_spread if real_spread > 0 else float("nan")


def near_duplicate_fraction(fake: Tensor, real: Tensor, closeness: float = 0.1) -> float:
    """Share of pairs of generated images closer than ``closeness`` x the real mean distance.

    Catches partial collapse onto a handful of outputs, which the mean distance alone misses:
    with k repeated patterns about 1/k of all pairs are near-duplicates; real data has almost none.
    """
    flat = fake.detach().float().flatten(1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    threshold = closeness * mean_pairwise_distance(real) * flat.shape[1] ** 0.5
    close = (torch.cdist(flat, flat) < threshold).sum() - n  # minus the diagonal
    return float(close) / (n * (n - 1))


class RollingWindow:
    """The last ``size`` values, with their magnitudes kept sorted: a median per batch costs a
    binary search, not a sort of the whole window (the monitor judges every batch)."""

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self._sorted_magnitudes: list[float] = []

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def __getitem__(self, index: int) -> float:
        return self.values[index]

    @staticmethod
    def _magnitude(value: float) -> float:
        return abs(value) if value == value else math.inf  # NaN sorts as infinitely large

    def append(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            oldest = self._magnitude(self.values[0])
            del self._sorted_magnitudes[bisect.bisect_left(self._sorted_magnitudes, oldest)]
        self.values.append(value)
        bisect.insort(self._sorted_magnitudes, self._magnitude(value))

    def median_magnitude(self) -> float:
        """The median of ``abs(v)`` over the window (NaN counting as infinite), read off the sorted magnitudes."""
        s, n = self._sorted_magnitudes, len(self._sorted_magnitudes)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

    def clear(self) -> None:
        self.values.clear()
        self._sorted_magnitudes.clear()


class HealthSignals:
    """The window of recent scalars and the verdicts drawn from it; free of Lightning."""

    def __init__(
        self,
        window: int,
        d_loss_floor: float,
        score_gap_ceiling: float,
        explosion_factor: float,
        loss_bounded_below: bool,
        scores_are_probabilities: bool,
    ) -> None:
        self.window = window
        self.d_loss_floor, self.score_gap_ceiling = d_loss_floor, score_gap_ceiling
        self.explosion_factor = explosion_factor
        self.loss_bounded_below, self.scores_are_probabilities = (
            loss_bounded_below,
            scores_are_probabilities,
        )
        self.d_loss, self.g_loss = RollingWindow(window), RollingWindow(window)
        self.gap: deque[float] = deque(maxlen=window)

    def add(
        self,
        d_loss: float | None,
        g_loss: float | None,
        real_score: float | None,
        fake_score: float | None,
    ) -> dict[str, str]:
        """Record one batch; returns ``{signal: what was seen}`` for every signal firing now."""
        alerts: dict[str, str] = {}
        for name, value, history in (
            ("loss/d", d_loss, self.d_loss),
            ("loss/g", g_loss, self.g_loss),
        ):
            if value is None:
                continue
            if len(history) == self.window:
                typical = history.median_magnitude()
                if abs(value) > self.explosion_factor * max(typical, 1e-3):
                    alerts["loss_explosion"] = (
                        f"{name}={value:.4g} is {abs(value) / max(typical, 1e-3):.0f}x its median magnitude "
                        f"{typical:.3g} over the last {self.window} batches"
                    )
            history.append(value)
        if real_score is not None and fake_score is not None:
            self.gap.append(real_score - fake_score)
        if len(self.d_loss) == self.window:
            mean_d = statistics.fmean(self.d_loss)
            if self.loss_bounded_below and mean_d < self.d_loss_floor:
                alerts["d_overpowering"] = (
                    f"mean D loss {mean_d:.4g} < {self.d_loss_floor} over the last {self.window} batches"
                )
        if self.scores_are_probabilities and len(self.gap) == self.window:
            mean_gap = statistics.fmean(self.gap)
            if mean_gap > self.score_gap_ceiling:
                alerts.setdefault(
                    "d_overpowering",
                    f"mean D(x) - D(G(z)) {mean_gap:.4f} > {self.score_gap_ceiling} over the last {self.window} batches",
                )
        return alerts

    def reset(self) -> None:
        for history in (self.d_loss, self.g_loss, self.gap):
            history.clear()

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.d_loss:
            out["health/d_loss_mean"] = statistics.fmean(self.d_loss)
        if self.gap:
            out["health/score_gap_mean"] = statistics.fmean(self.gap)
        return out
