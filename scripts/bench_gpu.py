"""GPU training throughput: gan-lab's speed options side by side, and its overhead over a plain loop.

    python scripts/bench_gpu.py --setups dcgan32 dcgan64 --json gpu.json    # needs CUDA; ~5 min

On a GPU the CPU-side questions of bench_throughput.py (data decoding, AMX) are gone; what is
left is kernel time (precision, memory layout, compilation) and everything between kernels (the
host-to-device copy of each batch, Lightning's hooks, callbacks that read values back). Each
variant trains the setup's G and D (built from the same gan-lab config as bench_throughput.py)
on synthetic images of the setup's shape, so no dataset is needed. A variant's figure is G steps
(each with one D step) per second over ``--steps`` steps after ``--warmup`` steps, timed between
two ``torch.cuda.synchronize()``; variants run one after another, ``--rounds`` times in turn,
and the median over rounds is printed. Variants:

- ``plain_fp32`` / ``plain_bf16_cl``: gan-lab's step written by hand (classic_loop.PlainGAN,
  recipe ``plain``), fed from a uint8 tensor on the GPU;
- ``ganlab_fp32`` / ``ganlab_bf16`` / ``ganlab_bf16_cl`` / ``ganlab_fp16_cl``: gan-lab (Lightning)
  at each precision and layout, with the data configs' ``data.on_device=true`` (batches gathered
  on the GPU, as in the plain loop);
- ``*_host``: the same with ``data.on_device=false`` (uint8 batches copied from host memory);
- ``ganlab_guarded``: ``ganlab_bf16_cl`` plus the divergence guard and health monitor callbacks
  (they read values back every step);
- ``ganlab_fp32_compiled`` / ``ganlab_compiled``: plus ``model.compile_networks=true``.

``--profile DIR`` then runs each variant once more under cProfile, over the timed steps only, and
prints the functions with the most host time per G step (e.g. Lightning's ``log_dict``); the
profiled runs are slower and do not enter the table.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classic_loop

FP32 = ("trainer.precision=32-true", "model.channels_last=false")
BF16_CL = ("trainer.precision=bf16-mixed", "model.channels_last=true")
HOST = ("data.on_device=false",)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plain_fp32": ("plain", FP32),
    "plain_bf16_cl": ("plain", BF16_CL),
    "ganlab_fp32_host": ("lightning", (*FP32, *HOST)),
    "ganlab_fp32": ("lightning", FP32),
    "ganlab_bf16": ("lightning", ("trainer.precision=bf16-mixed", "model.channels_last=false")),
    "ganlab_bf16_cl_host": ("lightning", (*BF16_CL, *HOST)),
    "ganlab_bf16_cl": ("lightning", BF16_CL),
    "ganlab_fp16_cl": ("lightning", ("trainer.precision=16-mixed", "model.channels_last=true")),
    "ganlab_guarded": ("lightning", (*BF16_CL, "callbacks=[divergence_guard,health_monitor]")),
    "ganlab_fp32_compiled": ("lightning", (*FP32, "model.compile_networks=true")),
    "ganlab_compiled": ("lightning", (*BF16_CL, "model.compile_networks=true")),
}


def compose(setup_name: str, overrides: tuple[str, ...], workdir: str) -> Any:
    """The setup's gan-train config on synthetic data of the same shape, on one GPU."""
    setup = replace(classic_loop.SETUPS[setup_name], dataset="synthetic")
    return classic_loop.compose(
        setup,
        "data=synthetic",
        f"data.image_size={setup.image_size}",
        f"data.channels={setup.channels}",
        "data.source.num_samples=16384",
        "callbacks=none",
        "trainer=gpu",
        "trainer.max_steps=1000000",
        "trainer.enable_model_summary=false",
        "+trainer.enable_progress_bar=false",
        *overrides,
        output_dir=workdir,
    )


class Stopwatch:
    """Times ``steps`` G steps after ``warmup``, between two device synchronisations.

    With a profiler, the profile covers exactly the timed steps (not start-up or warm-up), so its
    per-call costs divide by ``steps`` into host time per step.
    """

    def __init__(
        self,
        warmup: int,
        steps: int,
        profiler: cProfile.Profile | None = None,
        synchronize: Callable[[], None] = torch.cuda.synchronize,
    ) -> None:
        # the clock starts when the warm-up's last step ends: without one it would never start
        if warmup < 1 or steps < 1:
            raise ValueError(
                f"warmup={warmup}, steps={steps}: both must be >= 1 (the clock starts after the "
                "last warm-up step)"
            )
        self.warmup, self.steps, self.done = warmup, steps, 0
        self.profiler, self.synchronize = profiler, synchronize
        self.start = self.seconds = 0.0

    def step_done(self) -> bool:
        """Call after each G step; True once the timed steps are done."""
        self.done += 1
        if self.done == self.warmup:
            self.synchronize()
            if self.profiler is not None:
                self.profiler.enable()
            self.start = time.perf_counter()
        elif self.done == self.warmup + self.steps:
            self.synchronize()
            self.seconds = time.perf_counter() - self.start
            if self.profiler is not None:
                self.profiler.disable()
            return True
        return False


def run_plain(cfg: Any, watch: Stopwatch, bf16: bool, channels_last: bool) -> None:
    import hydra

    from gan_lab.data.transforms import uint8_to_float

    gan = classic_loop.plain_gan(cfg, bf16=bf16, channels_last=channels_last, device="cuda")
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    images = dm.train_set.images.cuda()
    batch = int(cfg.data.batch_size)
    while True:
        index = torch.randint(len(images), (batch,), device="cuda")
        gan.step(uint8_to_float(images[index]))
        if watch.step_done():
            return


def run_lightning(cfg: Any, watch: Stopwatch) -> None:
    import hydra
    import lightning as L

    from gan_lab.lightning_internals import fit_as_gan_train
    from gan_lab.trainer_args import trainer_config
    from gan_lab.utils import instantiate_callbacks, instantiate_loggers

    class Timed(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            if watch.step_done():
                trainer.should_stop = True

    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), Timed()]
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    trainer = hydra.utils.instantiate(
        trainer_config(cfg), callbacks=callbacks, logger=instantiate_loggers(cfg.logger)
    )
    fit_as_gan_train(trainer, model, datamodule)


def steps_per_second(
    setup: str, variant: str, warmup: int, steps: int, profiler: cProfile.Profile | None = None
) -> float:
    kind, overrides = VARIANTS[variant]
    torch.manual_seed(0)
    watch = Stopwatch(warmup, steps, profiler)
    with tempfile.TemporaryDirectory() as workdir:
        cfg = compose(setup, overrides, workdir)
        if kind == "plain":
            bf16 = cfg.trainer.precision == "bf16-mixed"
            run_plain(cfg, watch, bf16=bf16, channels_last=bool(cfg.model.channels_last))
        else:
            run_lightning(cfg, watch)
    torch.cuda.empty_cache()
    return steps / watch.seconds


def host_ms_per_step(stats: pstats.Stats, steps: int, top: int) -> list[tuple[str, float, float]]:
    """(function, own ms per step, cumulative ms per step) of the ``top`` functions by cumulative
    time: where the host spends a step, e.g. Lightning's ``log_dict``."""
    rows = []
    for (filename, line, name), (_, _, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            (f"{Path(filename).name}:{line}({name})", 1e3 * own / steps, 1e3 * cumulative / steps)
        )
    return sorted(rows, key=lambda row: row[2], reverse=True)[:top]


def profile_variant(
    setup: str, variant: str, warmup: int, steps: int, out_dir: Path, top: int
) -> None:
    profiler = cProfile.Profile()
    rate = steps_per_second(setup, variant, warmup, steps, profiler)
    out_dir.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(out_dir / f"{setup}-{variant}.prof")
    print(f"\n{setup} {variant} under cProfile: {rate:.1f} G steps/s; host ms per G step:")
    print(f"{'cumulative':>10} {'own':>8}  function")
    for function, own, cumulative in host_ms_per_step(pstats.Stats(profiler), steps, top):
        print(f"{cumulative:10.3f} {own:8.3f}  {function}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setups", nargs="+", default=["dcgan32"], choices=["dcgan32", "dcgan64"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--warmup", type=int, default=60, help="untimed G steps per variant")
    parser.add_argument("--steps", type=int, default=300, help="timed G steps per variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run each variant once under cProfile (timed steps only): DIR/<setup>-<variant>"
        ".prof, and the functions with the most host time per step printed",
    )
    parser.add_argument("--profile-top", type=int, default=15)
    args = parser.parse_args()
    for flag, value in (("--warmup", args.warmup), ("--steps", args.steps)):
        if value < 1:
            parser.error(f"{flag} {value}: must be >= 1 (timing starts after the warm-up steps)")
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (CPU throughput: scripts/bench_throughput.py)")
    rates: dict[str, dict[str, list[float]]] = {
        s: {v: [] for v in args.variants} for s in args.setups
    }
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rates": rates}
    for _ in range(args.rounds):
        for setup in args.setups:
            for variant in args.variants:
                rate = steps_per_second(setup, variant, args.warmup, args.steps)
                rates[setup][variant].append(rate)
                print(f"{setup} {variant}: {rate:.1f} G steps/s", flush=True)
                if args.json:  # after every run: a cut-off benchmark keeps what it measured
                    args.json.write_text(json.dumps(report, indent=1))
    if args.profile:  # after the timed rounds: the profiler's own cost must not touch the rates
        for setup in args.setups:
            for variant in args.variants:
                profile_variant(
                    setup, variant, args.warmup, args.steps, args.profile, args.profile_top
                )
    print(f"\n{report['device']}, torch {report['torch']}, median of {args.rounds} rounds")
    for setup in args.setups:
        batch = classic_loop.SETUPS[setup].batch_size
        median = {v: statistics.median(r) for v, r in rates[setup].items()}
        first = next(iter(median.values()))
        print(f"\n| {setup} (batch {batch}) | G steps/s | images/s | vs {args.variants[0]} |")
        print("|---|---:|---:|---:|")
        for variant, rate in median.items():
            print(f"| {variant} | {rate:.1f} | {rate * batch:.0f} | {rate / first:.2f}x |")


if __name__ == "__main__":
    main()
