"""Train the small in-domain classifier of one dataset on its real train split (CPU is enough).

    python scripts/train_classifier.py mnist   --data-dir ../shared/data --epochs 3
    python scripts/train_classifier.py cifar10 --path ../shared/data/cifar10-jpg --epochs 10

Writes ``src/gan_lab/metrics/assets/<dataset>_classifier.pt`` and a ``.json`` card beside it
(test accuracy, sha256 of the weights, the command, the training time). The metrics refuse
weights whose checksum does not match the card.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_lab.data import GANDataModule
from gan_lab.data.sources import CIFAR10, MNIST, SyntheticShapes
from gan_lab.metrics.classifier import (
    ClassifierSpec,
    SmallCNN,
    default_classifier_path,
    save_classifier,
)

log = logging.getLogger("train_classifier")

# Native shape and augmentation per dataset: (image_size, channels, crop padding, horizontal flip)
SOURCES = {"mnist": MNIST, "cifar10": CIFAR10, "synthetic": SyntheticShapes}
DATASETS = {"mnist": (28, 1, 2, False), "cifar10": (32, 3, 4, True), "synthetic": (32, 3, 2, False)}


def random_crop_flip(
    images: torch.Tensor, pad: int, flip: bool, g: torch.Generator
) -> torch.Tensor:
    """Batched random translation by up to ``pad`` pixels (reflect padding) and optional flips."""
    n, c, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[
        torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]
    if flip:
        mirror = torch.rand(n, generator=g) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out.to(torch.uint8)


@torch.no_grad()
def accuracy(
    model: SmallCNN, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> float:
    """Top-1 accuracy through the same float32 path the metrics use."""
    model.eval()
    hits = sum(
        int((model(images[i : i + batch])[1].argmax(1) == labels[i : i + batch]).sum())
        for i in range(0, len(images), batch)
    )
    return hits / len(images)


def train(args: argparse.Namespace) -> dict[str, object]:
    size, channels, pad, flip = DATASETS[args.dataset]
    source = (
        SOURCES[args.dataset](args.synthetic_size)
        if args.dataset == "synthetic"
        else SOURCES[args.dataset]()
    )
    dm = GANDataModule(
        source=source, data_dir=args.data_dir, path=args.path, image_size=size, channels=channels,
        cache_dir=args.cache_dir,
    )  # fmt: skip
    train_set, test_set = dm.load_split("train"), dm.load_split("test")
    spec = ClassifierSpec(
        args.dataset,
        size,
        channels,
        len(train_set.class_names),
        args.stem,
        args.widths,
        train_set.class_names,
    )
    torch.manual_seed(args.seed)
    model = SmallCNN(spec).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
    )
    steps_per_epoch = len(train_set) // args.batch_size
    total, warmup = args.epochs * steps_per_epoch, steps_per_epoch // 2
    schedule = lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup)))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(train_set), generator=g)
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size : (step + 1) * args.batch_size]
            images = random_crop_flip(train_set.images[idx], pad, flip, g)
            x = model.prepare(images).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = F.cross_entropy(
                    model.forward_float(x)[1].float(), train_set.labels[idx], label_smoothing=0.1
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log.info(
            "epoch %d/%d loss %.3f (%.0fs)",
            epoch + 1,
            args.epochs,
            loss.item(),
            time.perf_counter() - start,
        )
    seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format)
    test_acc = accuracy(model, test_set.images, test_set.labels)
    info = {
        "dataset": args.dataset,
        "test_accuracy": round(test_acc, 5),
        "test_images": len(test_set),
        "train_images": len(train_set),
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "command": " ".join(["python", *sys.argv]),
        "torch": torch.__version__,
    }
    card = save_classifier(model, Path(args.out or default_classifier_path(args.dataset)), info)
    print(
        f"{args.dataset}: test accuracy {test_acc:.4f} on {len(test_set)} images after {args.epochs} epochs ({seconds:.0f}s)"
    )
    print(f"wrote {card['weights']} sha256={card['sha256']}")
    return card


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument(
        "--data-dir", default="data", help="torchvision root holding MNIST/ (e.g. ../shared/data)"
    )
    p.add_argument(
        "--path", default=None, help="image folder with train/ and test/ (the CIFAR-10 JPEG copy)"
    )
    p.add_argument(
        "--cache-dir", default=".cache/gan_lab", help="decoded uint8 tensors, reused across runs"
    )
    p.add_argument(
        "--out", default=None, help="weights file (default: the committed asset of the dataset)"
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--stem", type=int, default=16)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--synthetic-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not math.isfinite(args.lr):
        p.error("--epochs and --batch-size must be >= 1 and --lr finite")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cli = parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    train(cli)
