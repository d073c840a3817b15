"""``gan-eval`` and ``gan-sample`` as subprocesses, each result cached as a file.

A score is keyed by the checkpoint's content digest (not its path or mtime: a copied run
directory is not rescored), the metrics, the sample and reference counts and any extra keys;
re-running the build recomputes nothing it has already computed. ``dry_run`` prints each
command that would run instead of running it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_lab.atomic_write import write_text_atomically
from gan_lab.errors import RunFailure
from gan_lab.results.run_reading import CheckpointInfo

log = logging.getLogger(__name__)

CACHE_VERSION = 1
INCEPTION_METRICS = {"fid", "kid", "precision_recall", "is"}
PLAIN = re.compile(r"^[A-Za-z0-9_./+:@-]*$")

Runner = Callable[[list[str], Path], None]


def hydra_value(value: str) -> str:
    """A path or string as a Hydra override value (quoted unless it is plain)."""
    return (
        value if PLAIN.match(value) else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    )


def run_subprocess(command: list[str], log_file: Path) -> None:
    """Run one command, its output into ``log_file``; a failure is one line with its last words."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        code = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
        ).returncode
    if code != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RunFailure(
            f"{' '.join(command[:3])} failed (exit {code}): {tail[0][:300]}; full log: {log_file}"
        )


@dataclass(frozen=True)
class EvalRequest:
    """One ``gan-eval`` of one checkpoint."""

    checkpoint: CheckpointInfo
    metrics: tuple[str, ...]
    n_samples: int
    n_reference: int
    overrides: tuple[str, ...] = ()

    def key(self) -> str:
        fields = {
            "version": CACHE_VERSION, "digest": self.checkpoint.digest, "metrics": sorted(self.metrics),
            "n_samples": self.n_samples, "n_reference": self.n_reference, "overrides": sorted(self.overrides),
        }  # fmt: skip
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]

    def command(self, python: str, out_dir: Path) -> list[str]:
        return [
            python, "-m", "gan_lab.eval", f"ckpt_path={hydra_value(str(self.checkpoint.path))}",
            f"metrics=[{','.join(self.metrics)}]", f"n_samples={self.n_samples}",
            f"n_reference={self.n_reference}", f"hydra.run.dir={hydra_value(str(out_dir))}",
            *self.overrides,
        ]  # fmt: skip


class Scorer:
    """Runs (or, in a dry run, prints) the commands; returns cached results when it has them."""

    def __init__(
        self,
        cache_dir: Path,
        runner: Runner = run_subprocess,
        dry_run: bool = False,
        python: str = sys.executable,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.cache_dir, self.runner, self.dry_run, self.python, self.echo = (
            cache_dir, runner, dry_run, python, echo,
        )  # fmt: skip
        self.ran = 0  # commands run (not cached, not dry)
        self.planned: list[list[str]] = []
        self.inception_samples = 0  # generated images the gan-evals put through Inception

    @staticmethod
    def _fresh(work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)  # a fresh Hydra run dir for every attempt

    def _plan(self, command: list[str]) -> None:
        self.planned.append(command)
        self.echo(" ".join(command))

    def score(self, request: EvalRequest) -> dict[str, Any] | None:
        """The gan-eval report of the request; None in a dry run (the command is printed)."""
        key = request.key()
        cached = self.cache_dir / "scores" / f"{key}.json"
        if cached.is_file():
            try:
                return json.loads(cached.read_text())["report"]
            except (json.JSONDecodeError, KeyError) as err:
                log.warning("ignoring damaged score cache %s (%s)", cached, err)
        work = self.cache_dir / "work" / f"eval-{key}"
        command = request.command(self.python, work)
        if INCEPTION_METRICS & set(request.metrics):
            self.inception_samples += request.n_samples
        if self.dry_run:
            self._plan(command)
            return None
        self._fresh(work)
        start = time.perf_counter()
        self.echo(
            f"scoring {request.checkpoint.path} ({request.checkpoint.kimg:.5g} kimg) at {request.n_samples} samples"
        )
        self.runner(command, work / "gan-eval.log")
        self.ran += 1
        report = json.loads((work / "metrics.json").read_text())
        entry = {
            "report": report, "command": command, "seconds": time.perf_counter() - start,
            "digest": request.checkpoint.digest, "metrics": list(request.metrics),
            "n_samples": request.n_samples, "n_reference": request.n_reference,
        }  # fmt: skip
        write_text_atomically(cached, json.dumps(entry, indent=2) + "\n")
        return report

    def grid(
        self, checkpoint: CheckpointInfo, n: int, nrow: int, overrides: Sequence[str], dest: Path
    ) -> Path | None:
        """``gan-sample``'s grid.png of the checkpoint, copied to ``dest``; None in a dry run."""
        fields = [CACHE_VERSION, checkpoint.digest, n, nrow, sorted(overrides)]
        key = hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:20]
        cached = self.cache_dir / "grids" / f"{key}.png"
        if not cached.is_file():
            work = self.cache_dir / "work" / f"sample-{key}"
            command = [
                self.python, "-m", "gan_lab.sample", f"ckpt_path={hydra_value(str(checkpoint.path))}",
                f"n={n}", f"nrow={nrow}", "individual=false", "interpolation.gif=false",
                f"hydra.run.dir={hydra_value(str(work))}", *overrides,
            ]  # fmt: skip
            if self.dry_run:
                self._plan(command)
                return None
            self._fresh(work)
            self.runner(command, work / "gan-sample.log")
            self.ran += 1
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "grid.png", cached)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, dest)
        return dest
