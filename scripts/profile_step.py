"""Where a training step's CPU time goes: torch.profiler's top operators for one setup.

    GAN_DATA_DIR=/path/to/data python scripts/profile_step.py --setup dcgan64 --batch 64 \\
        --precision bf16 --layout nhwc --steps 3 --threads 1

Profiles gan-lab's step written by hand (scripts/classic_loop.py ``plain``: fused Adam, EMA) on
random images, so the figures are the networks' kernels with no framework in between. Prints the
operators by self CPU time, the share spent in convolutions, BatchNorm, activations and layout
copies, images/s and the achieved GFLOP/s next to the CPU's dense bf16/fp32 matmul rate
(whether the CPU has AMX tiles decides that ceiling: ``amx_tile`` in /proc/cpuinfo).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import bench_throughput
import classic_loop

BUCKETS = {  # operator name fragments -> what they are
    "convolution": ("convolution", "conv"),
    "batch_norm": ("batch_norm",),
    "activation": ("relu", "leaky", "tanh", "sigmoid", "softplus"),
    "layout/dtype copies": ("copy_", "contiguous", "_to_copy", "clone"),
    "optimizer": ("fused_adam", "foreach"),
}


CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


def profile_setup(args: argparse.Namespace) -> dict:
    setup = classic_loop.SETUPS[args.setup]
    cfg = classic_loop.compose(setup)
    gan = classic_loop.plain_gan(
        cfg, bf16=args.precision == "bf16", channels_last=args.layout == "nhwc"
    )
    real = torch.rand(args.batch, setup.channels, setup.image_size, setup.image_size) * 2 - 1
    for _ in range(2):  # oneDNN primitive creation, allocator warm-up
        gan.step(real)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            gan.step(real)
    seconds = (time.perf_counter() - start) / args.steps
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    buckets = dict.fromkeys(BUCKETS, 0.0)
    for e in events:
        for bucket, fragments in BUCKETS.items():
            if any(f in e.key for f in fragments):
                buckets[bucket] += e.self_cpu_time_total / total
                break
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]
    flops = bench_throughput.flops_per_image(setup, "plain") * args.batch
    return {
        "setup": args.setup,
        "batch": args.batch,
        "precision": args.precision,
        "layout": args.layout,
        "images_per_s": args.batch / seconds,
        "gflops": flops / seconds / 1e9,
        "buckets": buckets,
        "top": [(e.key, e.count // args.steps, e.self_cpu_time_total / total) for e in top],
    }


def _best_seconds(fn, repeats: int = 3) -> float:
    fn()  # oneDNN primitive creation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _layer_times(conv: nn.Module, x: torch.Tensor, bf16: bool) -> tuple[float, float, float]:
    """Seconds of ``conv`` on ``x``: forward, then input and weight gradients net of it."""
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        grad_out = torch.randn_like(conv(x))

    def run(input_grad: bool, weight_grad: bool) -> float:
        x.requires_grad_(input_grad)
        conv.weight.requires_grad_(weight_grad)

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = conv(x)
            if input_grad or weight_grad:
                out.backward(grad_out)

        return _best_seconds(step)

    forward = run(False, False)
    times = forward, run(True, False) - forward, run(False, True) - forward
    conv.weight.requires_grad_(True)
    return times


def layer_timings(args: argparse.Namespace) -> list[dict]:
    """Each convolution of G and D on its own: forward, input gradient, weight gradient.

    The inputs are the ones each layer sees in one G -> D pass at this batch; times are best of 3,
    so a kernel shape that runs far below the others stands out.
    """
    setup = classic_loop.SETUPS[args.setup]
    g, d = classic_loop.networks(setup)
    layout = torch.channels_last if args.layout == "nhwc" else torch.contiguous_format
    g, d = g.to(memory_format=layout), d.to(memory_format=layout)
    convs = [m for m in (*g.modules(), *d.modules()) if isinstance(m, CONVOLUTIONS)]
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Size]] = {}

    def keep_input(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        seen[module] = args[0].detach().contiguous(memory_format=layout), output.shape

    hooks = [m.register_forward_hook(keep_input) for m in convs]
    with torch.no_grad():
        d(g(torch.randn(args.batch, g.latent_dim)))
    for hook in hooks:
        hook.remove()
    rows = []
    for conv in (m for m in convs if m in seen):  # G's 4x4 layer of z runs as a matmul
        x, out_shape = seen[conv]
        forward, input_grad, weight_grad = _layer_times(conv, x, args.precision == "bf16")
        # one multiply-add per kernel tap, input channel and output channel at each position
        # of the smaller map (the input of a transposed convolution, the output of a convolution)
        positions = x.shape[0] * (x[0, 0].numel() if conv.transposed else out_shape[2:].numel())
        kernel = conv.kernel_size[0] * conv.kernel_size[1]
        kind = "ConvTranspose2d" if conv.transposed else "Conv2d"  # also for their subclasses
        rows.append(
            {
                "layer": f"{kind} {conv.in_channels}->{conv.out_channels}",
                "input_hw": x.shape[2],
                "forward_ms": 1e3 * forward,
                "input_grad_ms": 1e3 * input_grad,
                "weight_grad_ms": 1e3 * weight_grad,
                "gflop": 2 * positions * conv.in_channels * conv.out_channels * kernel / 1e9,
            }
        )
    return rows


def print_layers(rows: list[dict]) -> None:
    print("   layer                      input  forward ms (GFLOP/s)  input grad  weight grad")
    for r in rows:
        rates = [
            r["gflop"] / (r[k] / 1e3) for k in ("forward_ms", "input_grad_ms", "weight_grad_ms")
        ]
        times = [r[k] for k in ("forward_ms", "input_grad_ms", "weight_grad_ms")]
        cells = "  ".join(f"{t:7.1f} ({g:5.0f})" for t, g in zip(times, rates))
        print(f"   {r['layer']:26s} {r['input_hw']:3d}px  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", default="dcgan64", choices=sorted(classic_loop.SETUPS))
    parser.add_argument("--batch", type=int, nargs="+", default=[64])
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--layers", action="store_true", help="also time each convolution on its own"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = bench_throughput.matmul_gflops(dtype)
    print(
        f"CPU flags: {bench_throughput.cpu_features()}; {args.precision} matmul peak {peak:.0f} GFLOP/s"
    )
    reports = []
    for batch in args.batch:
        args_batch = argparse.Namespace(**{**vars(args), "batch": batch})
        report = profile_setup(args_batch)
        report["matmul_peak_gflops"] = peak
        reports.append(report)
        print(
            f"\n== {args.setup} batch {batch} {args.precision} {args.layout}: "
            f"{report['images_per_s']:.1f} img/s, {report['gflops']:.1f} GFLOP/s "
            f"({100 * report['gflops'] / peak:.0f}% of the matmul peak)"
        )
        print("   " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in report["buckets"].items()))
        for key, calls, share in report["top"]:
            print(f"   {100 * share:5.1f}%  {calls:4d}/step  {key}")
        if args.layers:
            report["layers"] = layer_timings(args_batch)
            print_layers(report["layers"])
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
