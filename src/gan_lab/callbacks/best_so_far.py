"""The best value of one logged metric so far: what ``best/<metric>`` and ``best.ckpt`` follow.

Evaluations write a new tensor into ``trainer.callback_metrics`` each time they run; a watcher
that looks at every batch must take each written tensor once and skip non-finite values (a NaN
evaluation is never "the best").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MODES = ("min", "max")


class BestSoFar:
    """Best finite value of ``key`` (lower is better with ``mode="min"``)."""

    def __init__(self, key: str | None, mode: str = "min") -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: choose one of {', '.join(MODES)}")
        self.key, self.mode = key, mode
        self.value: float | None = None
        self._seen: Any = None  # the tensor last looked at

    def improves(self, number: float) -> bool:
        if self.value is None:
            return True
        return number < self.value if self.mode == "min" else number > self.value

    def offer(self, metrics: Mapping[str, Any]) -> float | None:
        """A value of ``key`` written since the last call that beats the best: it becomes the best
        and is returned; otherwise None."""
        value = metrics.get(self.key) if self.key else None
        if value is None or value is self._seen:
            return None
        self._seen = value
        number = float(value)
        if not math.isfinite(number) or not self.improves(number):
            return None
        self.value = number
        return number
