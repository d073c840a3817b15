"""When a periodic evaluation is due: every N generator steps, or every N kimg of real images.

Papers plot metrics against kimg (stylegan2-ada evaluates every 50 ticks of 4 kimg), and a kimg
period stays comparable across batch sizes and ``n_critic``. With ``n_critic > 1`` a multiple of
the kimg period usually falls between two G steps; the evaluation then runs at the first G step
at or after it. Periods are counted as *buckets* (``floor(kimg / every)``) compared with the last
evaluated bucket, never as a running "next due" sum, so no rounding accumulates over a long run
and a resumed run (the bucket is checkpointed) continues exactly where it stopped.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from gan_lab.errors import ConfigError


class EvaluationSchedule:
    """Exactly one of ``every_n_steps`` (G steps) / ``every_n_kimg`` (thousands of real images)."""

    def __init__(self, key: str, every_n_steps: int | None, every_n_kimg: float | None) -> None:
        steps_key, kimg_key = f"{key}.every_n_steps", f"{key}.every_n_kimg"
        if (every_n_steps is None) == (every_n_kimg is None):
            raise ConfigError(
                kimg_key,
                every_n_kimg,
                f"set exactly one of {steps_key} (now {every_n_steps!r}) and {kimg_key}, the "
                f"other null, e.g. {steps_key}=null {kimg_key}=50",
            )
        if every_n_steps is not None and (
            not isinstance(every_n_steps, int)
            or isinstance(every_n_steps, bool)
            or every_n_steps < 1
        ):
            raise ConfigError(
                steps_key, every_n_steps, "must be an integer >= 1 (G steps), or null"
            )
        if every_n_kimg is not None and (
            isinstance(every_n_kimg, bool)
            or not isinstance(every_n_kimg, int | float)
            or not math.isfinite(every_n_kimg)
            or every_n_kimg <= 0
        ):
            raise ConfigError(kimg_key, every_n_kimg, "must be a number > 0 (kimg), or null")
        self.every_n_steps, self.every_n_kimg = every_n_steps, every_n_kimg
        # exact decimal period in images (0.05 kimg is 50 images, not 50.000000000000004)
        self._images = Fraction(str(every_n_kimg)) * 1000 if every_n_kimg is not None else None
        self.last_bucket: int | None = None  # None until the run starts or a checkpoint restores it
        self.last_step = -1  # G step of the last evaluation

    def describe(self) -> str:
        if self.every_n_steps is not None:
            return f"every {self.every_n_steps} G steps"
        return f"every {self.every_n_kimg:g} kimg"

    def bucket(self, g_step: int, images_shown: int) -> int:
        """How many whole periods lie behind the run at this point."""
        if self._images is None:
            return g_step // int(self.every_n_steps or 1)
        return math.floor(Fraction(images_shown) / self._images)

    def start(self, g_step: int, images_shown: int) -> None:
        """A fresh run (or one resumed from a checkpoint without schedule state) starts counting here."""
        if self.last_bucket is None:
            self.last_bucket = self.bucket(g_step, images_shown)

    def due(self, g_step: int, images_shown: int) -> bool:
        """Whether a G step that was just taken is the first one of a new period."""
        if g_step <= 0 or g_step == self.last_step:
            return False
        return self.bucket(g_step, images_shown) > (self.last_bucket or 0)

    def mark(self, g_step: int, images_shown: int) -> None:
        """Record an evaluation at this point (also one at the end of training)."""
        self.last_bucket = self.bucket(g_step, images_shown)
        self.last_step = g_step

    def state_dict(self) -> dict[str, Any]:
        return {
            "period": self.describe(),
            "last_bucket": self.last_bucket,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = int(state.get("last_step", -1))
        # buckets of another period mean nothing here: count the new period from the resume point
        same = state.get("period") == self.describe()
        self.last_bucket = state.get("last_bucket") if same else None
