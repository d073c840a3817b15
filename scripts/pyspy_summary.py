"""Where a training step's time goes, from a py-spy profile: kernels vs framework vs data.

    py-spy record --pid PID --native -d 60 -r 20 -f raw -o profile.txt
    python scripts/pyspy_summary.py profile.txt

The throughput targets ask for profiler evidence of why a ratio is what it is. This buckets every
sampled stack (first matching rule wins) so the answer reads as one table: if the convolution and
autograd-backward kernels take most of the samples, the step is compute-bound and no framework
change can speed it up much; a large "Lightning / framework" share means the opposite.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (bucket, pattern on the whole ';'-joined stack); order matters: the first match wins
RULES = [
    (
        "forward convolutions (oneDNN)",
        r"_conv_forward|ConvTranspose\dd\.forward|convolution|conv2d|mkldnn|onednn|dnnl",
    ),
    ("autograd backward (conv/linear kernels)", r"_engine_run_backward|run_backward"),
    ("linear / matmul", r"\baddmm|\bmatmul|\blinear \("),
    ("normalization", r"batch_norm|BatchNorm|layer_norm|_SpectralNorm|_power_method"),
    ("activations", r"leaky_relu|relu \(|Tanh\.forward|Sigmoid\.forward"),
    ("optimizer step", r"_fused_adam|adam\.py|sgd\.py|optimizer\.py"),
    ("generator EMA", r"ema_update|gan_lab/models/ema\.py"),
    (
        "data (fetch, slice, augment)",
        r"fetch|DataLoader|dataloader|tensor_loader|batch_sampler|transforms|augment\.py",
    ),
    ("other inside training_step", r"training_step \(gan_lab|gan_lab/models/gan_module\.py"),
    ("Lightning / framework outside the step", r"lightning/"),
]


def summarize(lines: list[str]) -> tuple[Counter[str], int]:
    buckets: Counter[str] = Counter()
    total = 0
    for line in lines:
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        bucket = next((name for name, rule in RULES if re.search(rule, stack)), "other")
        buckets[bucket] += n
    return buckets, total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path, help="py-spy record -f raw output")
    args = parser.parse_args()
    buckets, total = summarize(args.profile.read_text().splitlines())
    print(f"{total} samples")
    for name, n in buckets.most_common():
        print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
