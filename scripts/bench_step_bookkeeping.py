"""Microbenchmarks of the per-batch bookkeeping behind the default callbacks (docs/benchmarks.md).

Prints, at 1 torch thread: Lightning's callback-hook dispatch vs gan-lab's lean dispatch (one
hook name, the default callbacks), the health monitor's per-batch median (a sort of the window vs
the sorted window), and the divergence guard's non-finite check over the MNIST MLP's gradients,
with the gradients in cache and after a 64 MB write has evicted them.

    GAN_DATA_DIR=/path/to/data python scripts/bench_step_bookkeeping.py
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial

import hydra
import torch

import classic_loop


def per_call_us(
    fn: Callable[[], object], n: int, before: Callable[[], object] | None = None
) -> float:
    """Median microseconds of ``fn`` over ``n`` calls (``before`` runs untimed before each)."""
    times = []
    for _ in range(n):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def hook_dispatch() -> None:
    from lightning.pytorch.trainer import call

    from gan_lab.lightning_internals import lean_callback_hooks
    from gan_lab.trainer_args import trainer_config
    from gan_lab.utils import instantiate_callbacks

    with tempfile.TemporaryDirectory() as workdir:
        cfg = classic_loop.compose(classic_loop.SETUPS["mlp"], output_dir=workdir)
        trainer = hydra.utils.instantiate(
            trainer_config(cfg), callbacks=instantiate_callbacks(cfg.get("callbacks")), logger=False
        )
        hook = lambda: call._call_callback_hooks(trainer, "on_after_backward")  # noqa: E731
        lightning = per_call_us(hook, 2000)
        with lean_callback_hooks():
            lean = per_call_us(hook, 2000)
    print(f"hook dispatch, {len(trainer.callbacks)} callbacks, one hook name: "
          f"Lightning {lightning:.1f} us, lean {lean:.1f} us")  # fmt: skip


def health_median(window: int = 200) -> None:
    from gan_lab.training.health_signals import RollingWindow

    values = [random.random() for _ in range(window)]
    rolling = RollingWindow(window)
    for v in values:
        rolling.append(v)
    sort = per_call_us(lambda: statistics.median(abs(v) for v in rolling), 5000)
    lookup = per_call_us(rolling.median_magnitude, 5000)
    insert = per_call_us(lambda: rolling.append(random.random()), 5000)
    print(f"health window {window}: median by sorting {sort:.1f} us, sorted window "
          f"{lookup:.2f} us + {insert:.2f} us per append")  # fmt: skip


def guard_check() -> None:
    from gan_lab.callbacks.divergence_guard import nonfinite_gradients

    with tempfile.TemporaryDirectory() as workdir:
        cfg = classic_loop.compose(classic_loop.SETUPS["mlp"], output_dir=workdir)
    flush = torch.empty(16 * 2**20)
    for name in ("generator", "discriminator"):
        net = hydra.utils.instantiate(cfg.model[name])
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        opt = torch.optim.Adam(net.parameters())
        n = sum(p.numel() for p in net.parameters())
        check = partial(nonfinite_gradients, opt)
        hot = per_call_us(check, 200)
        cold = per_call_us(check, 100, before=lambda: flush.fill_(1.0))
        print(f"guard check, MLP {name} ({n / 1e6:.2f}M gradients): "
              f"{hot / 1e3:.3f} ms in cache, {cold / 1e3:.3f} ms cold")  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    hook_dispatch()
    health_median()
    guard_check()


if __name__ == "__main__":
    main()
