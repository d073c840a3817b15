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
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
