"""Malformed inputs to gan-train, gan-eval and gan-sample: each is refused with exit code 2 and
one line on stderr, no traceback, and nothing in the run directories (or anywhere under the
test root) created or changed, because every check runs before Hydra makes a run directory.

The cases run the commands' real entry points in forked processes (tests/forked_cli.py; a fresh
interpreter costs 10-20 s of imports here); three run as real subprocesses (``-m slow``) to show
the forked path is the CLI's. 42 cases run by default, all 72 with ``-m "slow or not slow"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_lab.train import CONFIG_PATH
from tests.forked_cli import Result, run_forked
from tests.hostile_fixtures import TRAIN_ARGS, make_hostile_world, snapshot

# the generator options the error must list: whatever configs/model/generator/ holds
GENERATORS = ", ".join(
    sorted(p.stem for p in Path(CONFIG_PATH, "model", "generator").glob("*.yaml"))
)

T, E, S = "train", "eval", "sample"


def slow(command: str, args: list[str], expected: str) -> object:
    """A case like a faster one of the same kind: run with ``-m slow`` (the file stays ~1 min)."""
    return pytest.param(command, args, expected, marks=pytest.mark.slow)


def no_gpu(command: str, args: list[str], expected: str) -> object:
    """The refusal of a GPU request on a machine without one (skipped where there is one)."""
    has_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
    return pytest.param(command, args, expected, marks=has_gpu)


FOLDER = ["data=image_folder", "data/source=image_folder", "data.channels=1"]
# (command, arguments with {placeholders} from make_hostile_world, text the one line must hold)
CASES = [
    # --- gan-train: values
    (T, ["data.batch_size=-1"], "data.batch_size=-1 is invalid"),
    slow(T, ["data.batch_size=0"], "data.batch_size=0 is invalid"),
    slow(T, ["data.image_size=4"], "data.image_size=4 is invalid"),
    slow(T, ["data.channels=2"], "data.channels=2 is invalid"),
    slow(T, ["data.num_workers=-1"], "data.num_workers=-1 is invalid"),
    slow(T, ["data.heldout_fraction=1.5"], "data.heldout_fraction=1.5 is invalid"),
    slow(T, ["data.source.num_samples=8"], "is smaller than one batch"),
    (T, ["model.n_critic=0"], "model.n_critic=0 is invalid"),
    slow(T, ["model.optimizer_g.lr=-1"], "model.optimizer_g.lr=-1 is invalid"),
    slow(T, ["model.ema_decay=2"], "model.ema_decay=2 is invalid"),
    slow(T, ["model.grad_clip_g=-1"], "model.grad_clip_g=-1 is invalid"),
    slow(T, ["trainer.max_steps=0"], "trainer.max_steps=0 is invalid"),
    slow(T, ["trainer.precision=banana"], "trainer.precision='banana' is invalid"),
    slow(T, ["trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val=1.0 is invalid"),
    slow(T, ["trainer.accelerator=tpu9"], "trainer.accelerator='tpu9' is invalid"),
    slow(T, ["trainer.devices=0"], "trainer.devices=0 is invalid"),
    slow(T, ["seed=abc"], "seed='abc' is invalid"),
    slow(T, ["callbacks.divergence_guard.policy=explode"], "policy='explode' is invalid"),
    (T, ["callbacks.divergence_guard.max_consecutive_skips=-3"], "max_consecutive_skips=-3"),
    no_gpu(T, ["trainer=gpu", "trainer.accelerator=gpu"], "no CUDA GPU is visible here"),
    # --- gan-train: Hydra composition
    (T, ["data=mnsit"], "data=mnsit is not an option of group data; nearest: mnist"),
    slow(T, ["model.lrr=1"], "model.lrr is not a key or config group"),
    (T, ["dat=mnist"], "dat is not a key or config group of this config; nearest: data"),
    (T, ["model/generatr=mlp"], "nearest: model/generator"),
    (T, ["model/generator=stylegan9"], f"choose one of {GENERATORS}"),
    (T, ["data.batch_size=["], "an override cannot be parsed"),
    slow(T, ["+data.batch_size=3"], "+data.batch_size adds a key that exists"),
    # --- gan-train: data, run directories, checkpoints
    (T, [*FOLDER, "data.path={root}/nowhere"], "is not a directory"),
    (T, [*FOLDER, "data.path={tiny_folder}"], "has only 3 images"),
    (T, [*FOLDER, "data.path={corrupt_folder}"], "broken.png: Unsupported image file"),
    (T, ["hydra.run.dir={afile}/run"], "is a file, not a folder"),
    (T, ["hydra.run.dir={run}"], "already holds a run"),
    (T, ["ckpt_path={root}/missing.ckpt"], "is not a file"),
    (T, ["ckpt_path={tampered}"], "is corrupted: its sha256 digest does not match"),
    (T, ["ckpt_path={pickle}"], "holds objects other than tensors"),
    (T, ["ckpt_path={text}"], "cannot be loaded safely"),
    (T, ["ckpt_path={other_arch}"], "was written by a different model: generator."),
    (T, ["hydra.run.dir={broken_run}", "ckpt_path=auto"], "none of the 2 checkpoints"),
    (T, ["hydra.run.dir={broken_run}", "ckpt_path=last"], "ckpt_path=last: none of the 2"),
    (T, ["hydra.run.dir={locked}", "ckpt_path=last"], "is in use by pid"),
    # --- gan-eval
    (E, ["ckpt_path={last}", "n_samples=1"], "n_samples=1 is invalid"),
    (E, ["ckpt_path={last}", "n_samples=100000000"], "must be an integer in [2, 200000]"),
    slow(E, ["ckpt_path={last}", "n_reference=0"], "n_reference=0 is invalid"),
    slow(E, ["ckpt_path={last}", "batch_size=0"], "batch_size=0 is invalid"),
    (E, ["ckpt_path={last}", "reference_split=validation"], "reference_split='validation'"),
    (E, ["compare_split=val"], "compare_split='val' is invalid"),
    no_gpu(E, ["ckpt_path={last}", "device=cuda"], "CUDA is not available here"),
    slow(E, ["ckpt_path={last}", "device=tpu"], "device='tpu' is invalid"),
    (E, ["ckpt_path={last}", "metrics=[fid,foo]"], "foo"),
    (E, ["ckpt_path={last}", "output_file={run}"], "is a folder"),
    (E, ["ckpt_path={last}", "output_file={afile}/m.json"], "is a file, not a folder"),
    (E, [], "ckpt_path is missing"),
    slow(E, ["ckpt_path={root}/missing.ckpt"], "does not exist"),
    (E, ["ckpt_path={tampered}"], "is corrupted"),
    (E, ["ckpt_path={pickle}"], "holds objects other than tensors"),
    (E, ["ckpt_path={hostile}"], "run_config.model.generator._target_='builtins.open'"),
    slow(E, ["ckpt_path={last}", "nsamples=5"], "nsamples is not a key"),
    # --- gan-sample
    (S, ["ckpt_path={last}", "n=0"], "n=0 is invalid"),
    (S, ["ckpt_path={last}", "n=100000000"], "must be an integer in [1, 10000]"),
    slow(S, ["ckpt_path={last}", "nrow=0"], "nrow=0 is invalid"),
    slow(S, ["ckpt_path={last}", "batch_size=100000"], "batch_size=100000 is invalid"),
    slow(S, ["ckpt_path={last}", "seed=-1"], "seed=-1 is invalid"),
    slow(S, ["ckpt_path={last}", "interpolation.steps=1"], "interpolation.steps=1 is invalid"),
    slow(S, ["ckpt_path={last}", "per_class=-1"], "per_class=-1 is invalid"),
    (S, ["ckpt_path={last}", "individual=maybe"], "individual='maybe' is invalid"),
    no_gpu(S, ["ckpt_path={last}", "device=cuda"], "CUDA is not available here"),
    (S, ["ckpt_path={last}", "output_dir={afile}"], "is a file"),
    (S, ["ckpt_path={tampered}"], "is corrupted"),
    (S, ["ckpt_path={pickle}"], "holds objects other than tensors"),
    slow(S, ["ckpt_path={text}"], "cannot be loaded safely"),
    (S, ["ckpt_path={hostile}"], "is not allowed"),
    slow(S, ["ckpt_path={last}", "interpolation=5"], "interpolation"),
]
# eval/sample write into the run they evaluate unless told otherwise: make that the hostile case
DEFAULT_OUTPUT = {E: ["output_file={run}/eval/metrics.json"], S: ["output_dir={run}/samples"]}


def case_id(case: object) -> str:
    command, args, _ = case.values if hasattr(case, "values") else case  # type: ignore[attr-defined]
    return f"{command}:{' '.join(args) or 'no-args'}"[:60]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_hostile_world(tmp_path_factory.mktemp("hostile"))


def command_line(command: str, args: list[str], world: dict[str, Path]) -> list[str]:
    base = TRAIN_ARGS if command == T else []
    if "data=image_folder" in args:  # the synthetic source's own keys do not exist there
        base = [a for a in base if not a.startswith(("data/source=", "data.source."))]
    given = {a.split("=")[0] for a in args}
    defaults = [a for a in DEFAULT_OUTPUT.get(command, []) if a.split("=")[0] not in given]
    return [a.format(**{k: str(v) for k, v in world.items()}) for a in [*base, *defaults, *args]]


def assert_refused(
    result: Result | subprocess.CompletedProcess, expected: str, before: dict, root: Path
) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("gan-"), lines
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    after = snapshot(root)
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) ^ set(after)}


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    CASES,
    ids=[case_id(case) for case in CASES],
)
def test_refused_in_one_line_before_anything_is_written(
    command: str, args: list[str], expected: str, world: dict[str, Path]
) -> None:
    root = world["root"]
    before = snapshot(root)
    result = run_forked(command, command_line(command, args, world), root, timeout=300)
    assert_refused(result, expected, before, root)
    assert not world["pwned"].exists()


def test_there_are_at_least_forty_cases_over_all_three_commands() -> None:
    fast = [c for c in CASES if not any(m.name == "slow" for m in getattr(c, "marks", ()))]
    assert len(CASES) >= 60 and len(fast) >= 40
    assert {case_id(c).split(":")[0] for c in fast} == {T, E, S}


REAL_SUBPROCESS = [
    ("gan_lab.train", T, ["model.n_critic=0"], "model.n_critic=0 is invalid"),
    ("gan_lab.eval", E, ["ckpt_path={hostile}"], "is not allowed"),
    ("gan_lab.sample", S, ["ckpt_path={last}", "n=0"], "n=0 is invalid"),
]


@pytest.mark.slow  # a fresh interpreter per command: 20-40 s each on a busy 2-core machine
@pytest.mark.parametrize(("module", "command", "args", "expected"), REAL_SUBPROCESS)
def test_the_real_commands_refuse_the_same_way(
    module: str, command: str, args: list[str], expected: str, world: dict[str, Path]
) -> None:
    root = world["root"]
    before = snapshot(root)
    result = subprocess.run(
        [sys.executable, "-m", module, *command_line(command, args, world)],
        cwd=root, env={**os.environ, "GAN_LAB_ROOT": str(root), "PYTHONWARNINGS": "ignore"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_refused(result, expected, before, root)
