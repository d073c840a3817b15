"""FID Inception speed: NHWC (what gan-lab's InceptionExtractor uses) vs NCHW, side by side.

    GAN_FID_WEIGHTS=/path/to/pt_inception-2015-12-05.pth python scripts/bench_inception.py

Scoring 10k samples is most of a quality benchmark's wall time on a CPU, so the extractor's memory
layout was chosen by this measurement. Both layouts run the same float32 network on the same
random 32x32 uint8 images, alternating round by round; the script prints images/s per layout, the
median per-round ratio, and the largest feature difference between the two (the layouts must give
the same FID).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from gan_lab.metrics import InceptionExtractor


def images_per_second(extractor: InceptionExtractor, images: torch.Tensor) -> float:
    start = time.perf_counter()
    extractor(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100, help="images per layout and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--inception-weights", default=None, help="FID Inception weights (.pth)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    nhwc = InceptionExtractor(args.inception_weights)
    nchw = InceptionExtractor(args.inception_weights)
    nchw.net.to(memory_format=torch.contiguous_format)
    layouts = {"nhwc": nhwc, "nchw": nchw}
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8)

    warm = images[: nhwc.batch_size]
    features = {name: extractor(warm)[0] for name, extractor in layouts.items()}
    max_diff = float((features["nhwc"] - features["nchw"]).abs().max())
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(args.rounds):
        for name, extractor in layouts.items():
            rates[name].append(images_per_second(extractor, images))
    ratio = statistics.median(a / b for a, b in zip(rates["nhwc"], rates["nchw"], strict=True))

    report = {
        "threads": args.threads,
        "images_per_round": args.images,
        "images_per_s": {name: statistics.median(r) for name, r in rates.items()},
        "nhwc_over_nchw": ratio,
        "max_feature_diff": max_diff,
    }
    print(
        f"Inception, {args.threads} thread(s), {args.images} images x {args.rounds} rounds: "
        f"NHWC {report['images_per_s']['nhwc']:.1f} img/s, "
        f"NCHW {report['images_per_s']['nchw']:.1f} img/s, "
        f"ratio {ratio:.2f}x; features differ by at most {max_diff:.1e}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
