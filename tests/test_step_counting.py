"""`trainer.max_steps` counts generator updates whatever n_critic is."""

from __future__ import annotations

import pytest
from lightning.pytorch.callbacks import Callback

from gan_lab.train import train


class CountOptimizerSteps(Callback):
    """Counts real optimizer.step() calls by wrapping the step functions of both optimizers."""

    def __init__(self) -> None:
        self.counts = {"g": 0, "d": 0}

    def on_train_start(self, trainer, pl_module) -> None:
        for name, opt in zip(("g", "d"), trainer.optimizers):
            original = opt.step

            def counted(*args, _original=original, _name=name, **kwargs):
                self.counts[_name] += 1
                return _original(*args, **kwargs)

            opt.step = counted


@pytest.mark.parametrize("n_critic", [1, 5])
def test_max_steps_means_generator_updates(n_critic: int, make_cfg, monkeypatch) -> None:
    counter = CountOptimizerSteps()
    monkeypatch.setattr("gan_lab.train.instantiate_callbacks", lambda cfg: [counter])
    cfg = make_cfg(
        f"model.n_critic={n_critic}",
        "trainer.max_steps=7",
        "data.batch_size=16",
        "logger=csv",
        dataset="mnist",
    )
    train(cfg)
    assert counter.counts == {"g": 7, "d": 7 * n_critic}
