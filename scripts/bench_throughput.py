"""Training throughput: gan-lab vs the classic hand-written loop, measured side by side.

    GAN_DATA_DIR=/path/to/data python scripts/bench_throughput.py            # ~4 minutes on 2 cores

Every variant trains the same G and D (built from the same gan-lab config) in its own process
(so peak RSS is its own), for a fixed wall-clock slice after a warm-up. Variants run interleaved,
round after round, so a noisy shared machine slows them alike; ratios are taken within a round
and the median over rounds is reported. Variants:

- ``classic``     the tutorial loop (scripts/classic_loop.py): per-sample torchvision transforms,
                  DataLoader, fp32, NCHW;
- ``plain_fp32``  gan-lab's step written by hand, fed by gan-lab's data path, fp32;
- ``ganlab_fp32`` gan-lab (Lightning) at the same settings as ``plain_fp32``;
- ``ganlab``      gan-lab with the experiment's defaults (precision, channels_last);
- ``ganlab_bf16_nchw`` / ``ganlab_fp32_cl`` / ``ganlab_bf16_cl`` (optional): each speed option
  alone and both, whatever the experiment's defaults are;
- ``ganlab_compiled`` (optional): the defaults plus ``model.compile_networks=true`` (the warm-up
  slice absorbs the compilation);
- ``ganlab_callbacks``: gan-lab as ``gan-train`` runs it, with the default callbacks (checkpoints,
  sample grids, divergence guard, health monitor, periodic metrics, progress bar);
- ``ganlab_compiled_step``: the defaults plus ``model.compile_step=true`` (each update's forward
  and backward compiled; the warm-up slice absorbs the compilation).

``--setups overhead`` trains networks of a few thousand weights, where a step is host work (Python,
hooks, kernel launches) as small GANs are on a GPU; the report gives milliseconds per step.
``--ddp STEPS`` instead times STEPS steps on 2 gloo processes per DDP strategy (scripts/ddp_timing.py).

It also measures the CPU's bf16 and fp32 matmul peak and converts images/s into FLOP/s with
torch's FLOP counter on one training step.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classic_loop

VARIANTS = {
    # name: (kind, extra gan-train overrides)
    "classic": ("classic", ()),
    "plain_fp32": ("plain", ("trainer.precision=32-true", "model.channels_last=false")),
    "ganlab_fp32": ("lightning", ("trainer.precision=32-true", "model.channels_last=false")),
    "ganlab": ("lightning", ()),
    "ganlab_bf16_nchw": (
        "lightning",
        ("trainer.precision=bf16-mixed", "model.channels_last=false"),
    ),
    "ganlab_fp32_cl": ("lightning", ("trainer.precision=32-true", "model.channels_last=true")),
    "ganlab_bf16_cl": ("lightning", ("trainer.precision=bf16-mixed", "model.channels_last=true")),
    # torch.compile of G's and D's forward on top of the experiment's defaults
    "ganlab_compiled": ("lightning", ("model.compile_networks=true",)),
    "ganlab_callbacks": ("lightning_callbacks", ()),
    # the default callbacks but the divergence guard: its one read of every gradient per update
    # is the part of the callbacks' cost that grows with the network
    "ganlab_callbacks_unguarded": ("lightning_callbacks", ("~callbacks.divergence_guard",)),
    "ganlab_compiled_step": ("lightning", ("model.compile_step=true",)),
    # the experiment's defaults with oneDNN's own weight gradient in DCGAN's small-map layers
    # (gan_lab/models/nets/small_map_conv.py), to measure what the matmul form buys
    "ganlab_native_conv": ("lightning", ()),
}
NATIVE_CONV_VARIANTS = ("ganlab_native_conv",)
DEFAULT_VARIANTS = ("classic", "plain_fp32", "ganlab_fp32", "ganlab")
OVERHEAD_VARIANTS = ("classic", "plain_fp32", "ganlab_callbacks", "ganlab", "ganlab_compiled_step")


# ------------------------------------------------------------------------------------ workers
class Slices:
    """A worker's side of the protocol: train in slices the orchestrator asks for, pause between.

    The orchestrator writes ``RUN <seconds>`` or ``QUIT`` to stdin; after each slice the worker
    prints ``DONE <json step durations>``. Between slices the worker blocks, so exactly one
    variant runs at a time and variants alternate every few seconds.
    """

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.deadline = 0.0
        self.last = 0.0
        self.quit = False
        self._wait_for_command()

    def _wait_for_command(self) -> None:
        # protocol lines start on a line of their own: the progress bar (ganlab_callbacks)
        # writes to stdout too, with carriage returns instead of newlines
        print("\nREADY", flush=True)
        command = sys.stdin.readline().split()
        if not command or command[0] == "QUIT":
            self.quit = True
            return
        self.durations = []
        self.last = time.perf_counter()
        self.deadline = self.last + float(command[1])

    def step_done(self) -> bool:
        """Call after each training step; returns True when the worker should stop training."""
        now = time.perf_counter()
        self.durations.append(now - self.last)
        self.last = now
        if now >= self.deadline:
            print("\nDONE " + json.dumps(self.durations), flush=True)
            self._wait_for_command()
        return self.quit


def run_plain(setup: classic_loop.Setup, variant: str) -> None:
    """The hand-written loops."""
    import hydra

    from gan_lab.data.transforms import uint8_to_float

    kind, overrides = VARIANTS[variant]
    cfg = classic_loop.compose(setup, *overrides)
    if kind == "classic":
        G, D = (
            hydra.utils.instantiate(cfg.model.generator),
            hydra.utils.instantiate(cfg.model.discriminator),
        )
        gan = classic_loop.PlainGAN(G, D, recipe="classic")
        batches = classic_loop.forever(classic_loop.torchvision_loader(setup))
    else:
        gan = classic_loop.plain_gan(cfg)
        dm = hydra.utils.instantiate(cfg.data)
        dm.setup("fit")

        def tensor_batches() -> Any:
            loader = dm.train_dataloader()
            epoch = 0
            while True:
                dm.sampler.set_epoch(epoch)
                for images, _ in loader:  # the same conversion and flip as GANDataModule
                    x = uint8_to_float(images)
                    if dm.hflip:
                        flip = torch.rand(x.shape[0]) < 0.5
                        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                    yield x
                epoch += 1

        batches = tensor_batches()
    slices = Slices()
    while not slices.quit:
        gan.step(next(batches))
        slices.step_done()


def run_lightning(setup: classic_loop.Setup, variant: str, workdir: str) -> None:
    """gan-lab as `gan-train` builds it; without callbacks unless the variant keeps the defaults."""
    import hydra
    import lightning as L

    from gan_lab.lightning_internals import fit_as_gan_train
    from gan_lab.trainer_args import trainer_config
    from gan_lab.utils import instantiate_callbacks, instantiate_loggers

    kind, overrides = VARIANTS[variant]
    quiet = ("trainer.enable_model_summary=false",)
    if kind == "lightning":
        quiet += ("callbacks=none", "+trainer.enable_progress_bar=false")
    cfg = classic_loop.compose(
        setup,
        *quiet,
        "trainer.accelerator=cpu",
        "trainer.max_steps=1000000",
        *overrides,
        output_dir=workdir,
    )
    L.seed_everything(0, verbose=False)
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)

    class Paced(L.Callback):
        slices: Slices

        def on_train_start(self, trainer: L.Trainer, *args: Any) -> None:
            self.slices = Slices()

        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            if self.slices.step_done():
                trainer.should_stop = True

    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), Paced()]
    trainer = hydra.utils.instantiate(
        trainer_config(cfg), callbacks=callbacks, logger=instantiate_loggers(cfg.logger)
    )
    fit_as_gan_train(trainer, model, datamodule)


def worker(args: argparse.Namespace) -> None:
    setup = classic_loop.SETUPS[args.setup]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.worker in NATIVE_CONV_VARIANTS:
        from gan_lab.models.nets import small_map_conv

        small_map_conv.MAX_REDUCED_POSITIONS = 0
    with tempfile.TemporaryDirectory() as workdir:
        if VARIANTS[args.worker][0].startswith("lightning"):
            run_lightning(setup, args.worker, workdir)
        else:
            run_plain(setup, args.worker)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\nRSS " + json.dumps(rss), flush=True)


class Worker:
    """The orchestrator's handle on one variant's process."""

    def __init__(self, variant: str, setup: str, threads: int) -> None:
        self.variant, self.setup = variant, setup
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            variant,
            "--setup",
            setup,
            "--threads",
            str(threads),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.step_times: list[float] = []

    def _expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(
            f"{self.variant}/{self.setup} worker exited ({self.proc.wait()}); see its stderr"
        )

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ready(self) -> None:
        self._expect("READY")

    def run(self, seconds: float, keep: bool = True) -> None:
        self._send(f"RUN {seconds}")
        durations = json.loads(self._expect("DONE "))
        self._expect("READY")
        if keep:
            self.step_times += durations

    def finish(self) -> float:
        self._send("QUIT")
        rss = float(self._expect("RSS "))
        self.proc.wait()
        return rss


# ------------------------------------------------------------------------------- orchestrator
def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Best-of-repeats dense matmul rate: the compute ceiling a training step can approach."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_image(setup: classic_loop.Setup, recipe: str) -> float:
    """FLOPs of one training step (D update + G update, forward and backward) per real image."""
    from torch.utils.flop_counter import FlopCounterMode

    G, D = classic_loop.networks(setup)
    gan = classic_loop.PlainGAN(G, D, recipe=recipe)
    real = torch.rand(setup.batch_size, setup.channels, setup.image_size, setup.image_size) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        gan.step(real)
    return counter.get_total_flops() / setup.batch_size


def batch_rate(worker: Worker) -> float:
    """Images/s from the median step time (robust to steps slowed by other jobs)."""
    batch = classic_loop.SETUPS[worker.setup].batch_size
    return batch / statistics.median(worker.step_times) if worker.step_times else float("nan")


def measure_setup(
    name: str, variants: list[str], rounds: int, seconds: float, threads: int
) -> dict[str, Any]:
    """Start every variant, warm each up, then alternate slices of ``seconds`` for ``rounds`` rounds."""
    import hydra

    # Decode the dataset into the on-disk cache once, before the workers start.
    hydra.utils.instantiate(classic_loop.compose(classic_loop.SETUPS[name]).data).prepare_data()
    workers = {v: Worker(v, name, threads) for v in variants}
    try:
        for w in workers.values():
            w.ready()
        for w in workers.values():  # warm-up slice: allocator, oneDNN kernels, DataLoader workers
            w.run(seconds, keep=False)
        for r in range(rounds):
            for v in variants if r % 2 == 0 else reversed(variants):
                workers[v].run(seconds)
            now = ", ".join(f"{v} {batch_rate(w):.1f}" for v, w in workers.items())
            print(f"  [{name}] after round {r + 1}/{rounds}, img/s so far: {now}", flush=True)
    except BaseException:
        for w in workers.values():
            w.proc.kill()  # Lightning traps SIGTERM: an interrupted benchmark leaves no workers behind
        raise
    results = {}
    for v, w in workers.items():
        rss = w.finish()
        results[v] = {"images_per_s": batch_rate(w), "steps": len(w.step_times), "peak_rss_mb": rss}
        print(
            f"  [{name}] {v:>16}: {results[v]['images_per_s']:8.1f} img/s (median of {len(w.step_times)} "
            f"steps), peak RSS {rss:.0f} MB",
            flush=True,
        )
    return results


def orchestrate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads per variant; CPU flags: {cpu_features()}"
    )
    peaks = {"bf16": [matmul_gflops(torch.bfloat16)], "fp32": [matmul_gflops(torch.float32)]}
    report: dict[str, Any] = {"setups": {}, "args": {k: str(v) for k, v in vars(args).items()}}
    for name in args.setups:
        setup = classic_loop.SETUPS[name]
        results = measure_setup(name, args.variants, args.rounds, args.seconds[name], args.threads)
        flops = {recipe: flops_per_image(setup, recipe) for recipe in ("classic", "plain")}
        report["setups"][name] = {"results": results, "flops_per_image": flops}
    peaks["bf16"].append(matmul_gflops(torch.bfloat16))
    peaks["fp32"].append(matmul_gflops(torch.float32))
    report["matmul_peak_gflops"] = {k: max(v) for k, v in peaks.items()}
    print_report(report, args.variants)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def print_report(report: dict[str, Any], variants: list[str]) -> None:
    peak = report["matmul_peak_gflops"]
    print(
        f"\nmatmul peak (2048^2, best of repeats): bf16 {peak['bf16']:.0f} GFLOP/s, "
        f"fp32 {peak['fp32']:.0f} GFLOP/s (bf16/fp32 = {peak['bf16'] / peak['fp32']:.2f}x)"
    )
    for name, data in report["setups"].items():
        res, flops = data["results"], data["flops_per_image"]
        print(
            f"\n== {name}: training FLOPs/image: classic recipe {flops['classic'] / 1e9:.3f} G, "
            f"gan-lab step {flops['plain'] / 1e9:.3f} G (gan-lab draws fresh noise for the G step)"
        )
        print(
            f"{'variant':>20} {'img/s':>9} {'ms/step':>8} {'x classic':>10} {'x plain_fp32':>13} "
            f"{'GFLOP/s':>8} {'% bf16 peak':>12} {'% fp32 peak':>12} {'peak RSS MB':>12}"
        )
        batch = classic_loop.SETUPS[name].batch_size
        for v in variants:
            ips = res[v]["images_per_s"]
            gflops = ips * flops["classic" if v == "classic" else "plain"] / 1e9
            x_classic = ips / res["classic"]["images_per_s"] if "classic" in res else float("nan")
            x_plain = (
                ips / res["plain_fp32"]["images_per_s"] if "plain_fp32" in res else float("nan")
            )
            print(
                f"{v:>20} {ips:9.1f} {1e3 * batch / ips:8.2f} {x_classic:10.2f} {x_plain:13.3f} {gflops:8.1f} "
                f"{100 * gflops / peak['bf16']:11.1f}% {100 * gflops / peak['fp32']:11.1f}% "
                f"{res[v]['peak_rss_mb']:12.0f}"
            )


def cpu_features() -> str:
    from gan_lab.machine import cpu_flags

    flags = cpu_flags()
    if not flags:
        return "unknown"
    return (
        " ".join(
            f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags
        )
        or "none"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--setups", nargs="+", default=["dcgan64", "mlp"], choices=sorted(classic_loop.SETUPS)
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=list(VARIANTS),
        help=f"default: {' '.join(DEFAULT_VARIANTS)}; for --setups overhead: {' '.join(OVERHEAD_VARIANTS)}",
    )
    parser.add_argument(
        "--ddp",
        type=int,
        default=0,
        metavar="STEPS",
        help="time STEPS steps of each setup on 2 gloo processes per DDP strategy (rounds alternate)",
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="timed slices per variant (after one warm-up slice)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="seconds per slice")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads per variant; use 1 on a machine shared with other jobs (OpenMP threads "
        "that wait for a descheduled sibling slow small steps down by 10x or more)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.variants is None:
        overhead_only = args.setups == ["overhead"]
        args.variants = list(OVERHEAD_VARIANTS if overhead_only else DEFAULT_VARIANTS)
    if args.ddp:
        import ddp_timing

        ddp_timing.compare(args.setups, args.ddp, args.rounds, args.json)
        return
    # Default slices: a few DCGAN-64 steps each, or many MLP steps.
    args.seconds = {s: args.seconds or (6.0 if s.startswith("dcgan") else 2.0) for s in args.setups}
    orchestrate(args)


if __name__ == "__main__":
    main()
