"""Build docs/results.md from run directories: every recipe at equal kimg budgets.

For each run of the spec (docs/results_spec.yaml; format in gan_lab/results/spec.py) and each
kimg budget, the checkpoint closest to the budget (not over it, 1% allowed) is scored by
``gan-eval`` (table: 10k EMA samples vs 10k train; curves: every few checkpoints at 2k), one
sample grid per recipe comes from ``gan-sample``, and the page is written whole with the
command, date, machine, tables, curves, grids and the issue's targets judged from the numbers.
Every score is cached (keyed by the checkpoint's content digest, metrics and counts), so a
rerun recomputes nothing; ``--dry-run`` prints the gan-eval/gan-sample commands still to run.

    python scripts/build_results.py --spec docs/results_spec.yaml --dry-run
    nohup python scripts/build_results.py --spec docs/results_spec.yaml \\
        --eval-arg inception_weights=$GAN_FID_WEIGHTS > build_results.log 2>&1 &

Inception on a CPU: ~20 CPU-minutes per 10k samples, so a cell costs ~20 min and a 2k curve
point ~4 min; ``--curve-points`` and ``--curve-samples 0`` bound the curve cost.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from gan_lab.atomic_write import write_text_atomically
from gan_lab.errors import RunFailure, UserError
from gan_lab.results.build import TABLE_METRICS, TRAINING_CURVES, BuildOptions, Collector
from gan_lab.results.records_file import load_records, save_records
from gan_lab.results.report import render
from gan_lab.results.scoring import Scorer
from gan_lab.results.spec import load_spec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--spec", type=Path, default=Path("docs/results_spec.yaml"))
    p.add_argument("--out", type=Path, default=Path("docs/results.md"))
    p.add_argument("--img-dir", type=Path, default=None, help="default: img/ beside --out")
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/gan_lab/results"))
    p.add_argument(
        "--records",
        type=Path,
        default=None,
        help="the scored numbers of every run, read and rewritten by each build (default: "
        "results_records.json beside --spec); a run without its directory here is carried from it",
    )
    p.add_argument(
        "--metrics", nargs="+", default=list(TABLE_METRICS), help="gan-eval metrics of the table"
    )
    p.add_argument("--samples", type=int, default=10000, help="EMA samples per table cell")
    p.add_argument(
        "--reference",
        type=int,
        default=None,
        help="training images per table cell (default: --samples)",
    )
    p.add_argument("--curve-metrics", nargs="+", default=["fid", "kid"])
    p.add_argument(
        "--curve-samples",
        type=int,
        default=2000,
        help="samples (= reference images) per curve point; 0: none",
    )
    p.add_argument(
        "--curve-points", type=int, default=8, help="checkpoints per curve besides the table's"
    )
    p.add_argument(
        "--training-curves",
        nargs="*",
        default=list(TRAINING_CURVES),
        help="in-training scalars to plot",
    )
    p.add_argument("--grid-n", type=int, default=64)
    p.add_argument("--grid-nrow", type=int, default=8)
    p.add_argument(
        "--eval-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra gan-eval key, e.g. inception_weights=... or classifier_path=...",
    )
    p.add_argument("--sample-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra gan-sample key, e.g. truncation=0.7")  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true", help="print the commands that would run; write nothing"
    )
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    for name in ("samples", "grid_n", "grid_nrow"):
        if getattr(args, name) < 2:
            raise UserError(
                f"--{name.replace('_', '-')}={getattr(args, name)} is invalid: use at least 2"
            )
    if args.curve_samples < 0 or args.curve_samples == 1:
        raise UserError(
            f"--curve-samples={args.curve_samples} is invalid: 0 (no curve points) or >= 2"
        )
    if args.reference is not None and args.reference < 2:
        raise UserError(f"--reference={args.reference} is invalid: use at least 2")
    bad = [a for a in (*args.eval_arg, *args.sample_arg) if "=" not in a]
    if bad:
        raise UserError(f"--eval-arg {bad[0]!r} is invalid: KEY=VALUE, e.g. device=cuda")


def main(argv: list[str] | None = None, scorer: Scorer | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check(args)
        spec = load_spec(args.spec)
        options = BuildOptions(
            tuple(args.metrics), args.samples, args.reference, tuple(args.curve_metrics),
            args.curve_samples, args.curve_points, tuple(args.training_curves), args.grid_n,
            args.grid_nrow, tuple(args.eval_arg), tuple(args.sample_arg),
        )  # fmt: skip
        img_dir = args.img_dir or args.out.parent / "img"
        scorer = scorer or Scorer(args.cache_dir, dry_run=args.dry_run)
        records_path = args.records or args.spec.parent / "results_records.json"
        records = load_records(records_path)
        results = Collector(spec, options, scorer, img_dir, args.out.parent, records).collect()
        for missing in results.missing:
            print(f"missing: {missing}")
        if args.dry_run:
            print(
                f"dry run: {len(scorer.planned)} commands to run (the rest is cached), "
                f"{scorer.inception_samples} generated images through Inception (plus reference "
                f"images not yet cached; ~10 img/s per CPU core here); nothing written"
            )
            return 0
        command = "python scripts/build_results.py " + shlex.join(
            argv if argv is not None else sys.argv[1:]
        )
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_text_atomically(
            args.out, render(results, options, img_dir, args.out.parent, command, date)
        )
        save_records(records_path, results.records(date, records))
        print(
            f"wrote {args.out} ({scorer.ran} gan-eval/gan-sample runs, the rest from {args.cache_dir})"
        )
        return 0
    except UserError as err:
        print(f"build_results: error: {err}", file=sys.stderr)
        return 2
    except RunFailure as err:  # a gan-eval/gan-sample that failed; what is cached stays cached
        print(f"build_results: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
