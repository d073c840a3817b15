"""scripts/build_results.py: checkpoints picked by kimg, gan-eval cached, the page from the numbers.

Two tiny MLP GAN runs on synthetic data (checkpoints and in-training metrics every 2 G steps)
stand in for the real trainings; gan-eval / gan-sample run in-process through the same
override strings the script passes to their command lines (one slow test runs them as
subprocesses), scored on an untrained synthetic classifier (cheap; no Inception here).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from PIL import Image

from gan_lab.results.report import format_value
from gan_lab.results.run_reading import (
    RunDir,
)
from gan_lab.results.scoring import Scorer
from gan_lab.results.spec import SpecError, load_spec
from gan_lab.train import CONFIG_PATH
from tests.conftest import compose_train_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_results

CHEAP = ["--metrics", "classifier_fd", "class_coverage", "--samples", "40", "--curve-metrics",
         "classifier_fd", "--curve-samples", "20", "--curve-points", "2", "--grid-n", "16",
         "--grid-nrow", "4"]  # fmt: skip


def test_spec_errors_name_the_run_and_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "spec.yaml"
    for body, message in (
        ("runs: [{dataset: svhn, recipe: a, run_dir: r, threads: 1}]", r"runs\[0\].dataset='svhn'"),
        ("runs: [{dataset: mnist, recipe: a, run_dir: r}]", r"runs\[0\].threads is missing"),
        ("runs: [{dataset: mnist, recipe: a, run_dir: r, threads: 0}]", r"threads=0 is invalid"),
        ("runs: [{dataset: mnist, recipe: a, run_dir: r, threads: 1, repeat_of: b}]", "repeat_of='b'"),
        ("runs: [{dataset: mnist, recipe: a, run_dir: r, threads: 1, samples: 1}]", r"samples=1 is invalid"),
        ("runs: [{dataset: mnist, recipe: a, run_dir: r, threads: 1, budget: 5}]", "unknown keys"),
    ):  # fmt: skip
        spec.write_text(body)
        with pytest.raises(SpecError, match=message):
            load_spec(spec)
    assert build_results.main(["--spec", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("build_results: error: runs[0] has unknown keys") and "\n" not in err


def test_the_committed_example_spec_loads() -> None:
    spec = load_spec(Path(__file__).resolve().parents[1] / "docs" / "results_spec.yaml")
    recipes = {(r.dataset, r.recipe) for r in spec.runs}
    assert {("mnist", "mnist_budget"), ("cifar10", "cifar10_budget")} <= recipes
    assert any(r.repeat_of for r in spec.runs)
    # the issue's budgets are the budget recipes' first-seed cells (other runs may add budgets,
    # e.g. one that the CPU time of a baseline reaches)
    budgets = {(r.dataset, r.recipe): set(r.budgets_kimg) for r in spec.runs if r.id == r.recipe}
    assert budgets[("mnist", "mnist_budget")] == {500.0, 1000.0}
    assert budgets[("cifar10", "cifar10_budget")] == {1000.0, 3000.0}


def test_the_committed_records_load_and_belong_to_the_spec() -> None:
    from gan_lab.results.records_file import load_records

    docs = Path(__file__).resolve().parents[1] / "docs"
    spec = {r.id: r for r in load_spec(docs / "results_spec.yaml").runs}
    records = load_records(docs / "results_records.json")
    assert {"mnist_budget", "cifar10_budget"} <= set(records) <= set(spec)
    for run_id, record in records.items():
        assert {c.run_id for c in record.cells} == {run_id}
        assert {c.budget_kimg for c in record.cells} <= set(spec[run_id].budgets_kimg)
        assert all((docs / c.grid).is_file() for c in record.cells if c.grid)


# ----------------------------------------------------------------------------- tiny real runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 1-thread runs: 6 and 4 G steps of 16 images, checkpoints and metrics every 2 steps."""
    import torch

    from gan_lab.metrics.classifier import ClassifierSpec, SmallCNN, save_classifier
    from gan_lab.train import train

    root = tmp_path_factory.mktemp("results_runs")
    torch.manual_seed(0)
    save_classifier(SmallCNN(ClassifierSpec("synthetic", 16, 1, 10, stem=4, widths=[8, 8])),
                    root / "classifier.pt", {})  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, steps, seed in (("budget", 6, 0), ("budget_seed2", 4, 1)):
            overrides = [
                "data/source=synthetic", "data.source.num_samples=128", "data.batch_size=16",
                "data.image_size=16", "data.channels=1", "model.generator.width=8",
                "model.discriminator.width=8", f"trainer.max_steps={steps}", f"seed={seed}",
                "~callbacks.sample_grid", "callbacks.model_checkpoint.every_n_train_steps=2",
                "callbacks.metrics.every_n_steps=2", "callbacks.metrics.n_samples=24",
                "callbacks.metrics.n_reference=32", f"callbacks.metrics.classifier_path={root / 'classifier.pt'}",
            ]  # fmt: skip
            train(compose_train_config(overrides, root / name))
    finally:
        torch.set_num_threads(threads)
    (root / "spec.yaml").write_text(
        "machine: tiny test machine\nruns:\n"
        "  - {dataset: mnist, recipe: mnist_budget, run_dir: budget, threads: 2, budgets_kimg: [0.064, 0.5]}\n"
        "  - {id: seed2, dataset: mnist, recipe: mnist_budget, run_dir: budget_seed2, threads: 1,"
        " repeat_of: mnist_budget, budgets_kimg: [0.064, 0.5]}\n"
        "  - {dataset: cifar10, recipe: cifar10_budget, run_dir: not_trained_yet, threads: 1}\n"
    )
    return root


class InProcess:
    """Runs the gan-eval / gan-sample command lines in this process (seconds instead of ~9 s each)."""

    def __init__(self, cache: Path) -> None:
        self.cache, self.calls = cache, 0

    def __call__(self, command: list[str], log_file: Path) -> None:
        from gan_lab.eval import evaluate
        from gan_lab.sample import sample

        self.calls += 1
        assert command[:2] == [sys.executable, "-m"]
        entry, overrides = command[2], command[3:]
        out = next(o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir="))
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            cfg = compose(
                config_name=entry.removeprefix("gan_lab."),
                overrides=[o for o in overrides if not o.startswith("hydra.")],
            )
        with open_dict(cfg):
            cfg.paths.output_dir, cfg.paths.cache_dir = out, str(self.cache)
        {"gan_lab.eval": evaluate, "gan_lab.sample": sample}[entry](cfg)
        log_file.write_text("ran in-process\n")


def build(runs: Path, *extra: str, runner: InProcess, cache: Path | None = None) -> int:
    cache = cache or runs / "cache"
    scorer = Scorer(cache, runner=runner, dry_run="--dry-run" in extra)
    argv = ["--spec", str(runs / "spec.yaml"), "--out", str(runs / "docs" / "results.md"),
            "--cache-dir", str(cache), *CHEAP,
            "--eval-arg", f"classifier_path={runs / 'classifier.pt'}", *extra]  # fmt: skip
    return build_results.main(argv, scorer=scorer)


def table_rows(page: str) -> list[list[str]]:
    rows = [line for line in page.splitlines() if line.startswith("| `") or line.startswith("| ↳")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


@pytest.fixture(scope="module")
def built(runs: Path) -> tuple[Path, InProcess]:
    runner = InProcess(runs / "cache")
    assert build(runs, "--dry-run", runner=runner) == 0
    assert runner.calls == 0 and not (runs / "docs").exists()  # a dry run writes nothing
    assert build(runs, runner=runner) == 0
    return runs, runner


def test_dry_run_prints_the_gan_eval_and_gan_sample_commands(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    runner = InProcess(tmp_path)
    assert build(runs, "--dry-run", runner=runner, cache=tmp_path / "empty") == 0
    printed = capsys.readouterr().out
    assert runner.calls == 0 and not (tmp_path / "empty").exists()
    evals = [line for line in printed.splitlines() if " -m gan_lab.eval " in line]
    samples = [line for line in printed.splitlines() if " -m gan_lab.sample " in line]
    counts = sorted(re.search(r" n_samples=(\d+) ", line).group(1) for line in evals)
    assert counts == ["20", "20", "20", "40", "40"] and len(samples) == 1  # as the real build
    assert all(re.search(r"ckpt_path=/\S+/step_000000[246]\.ckpt ", line) for line in evals)
    assert "dry run: 6 commands to run" in printed
    assert "missing: `cifar10_budget`" in printed


def test_cells_pick_by_kimg_and_show_the_json_scores(built: tuple[Path, InProcess]) -> None:
    runs, runner = built
    # cells: budget 0.064 of each run; curves: steps 2, 4, 6 of the first run; 1 grid
    assert runner.calls == 2 + 3 + 1
    page = (runs / "docs" / "results.md").read_text()
    rows = table_rows(page)
    assert [r[:3] for r in rows[:4]] == [
        ["`mnist_budget`", "0.064", "0.064 (4)"],
        ["↳ repeat `seed2`", "0.064", "0.064 (4)"],
        ["`mnist_budget`", "0.5", "not reached (max 0.096 kimg)"],
        ["↳ repeat `seed2`", "0.5", "not reached (max 0.064 kimg)"],
    ]
    assert [r[1:3] for r in rows[4:]] == [["1000", "missing"], ["3000", "missing"]]
    assert "not_trained_yet does not exist" in page.split("## Missing")[1]
    scores = {}
    for file in (runs / "cache" / "scores").glob("*.json"):
        entry = json.loads(file.read_text())
        if entry["n_samples"] == 40:
            scores[Path(entry["report"]["checkpoint"]).parts[-3]] = entry["report"]["metrics"]
    assert set(scores) == {"budget", "budget_seed2"}
    for row, run in ((rows[0], "budget"), (rows[1], "budget_seed2")):
        fd = scores[run]["classifier_fd"]["classifier_fd"]
        hit = scores[run]["class_coverage"]["classes_hit"]
        assert row[3:5] == [format_value("classifier_fd", fd), format_value("classes_hit", hit)]
    # CPU-minutes: TensorBoard time to G step 4 x 2 threads, close to the checkpoint's own mtime
    run = RunDir(runs / "budget")
    info = next(c for c in run.checkpoints if c.g_step == 4)
    seconds, source = run.wall_seconds(info)
    assert source == "tensorboard" and 0 < seconds < 60
    assert abs(info.path.stat().st_mtime - run.segments[0].start - seconds) < 5
    assert rows[0][5] == f"{seconds * 2 / 60:.2g}"
    assert "Machine (CPU type of the runs):\n\n- tiny test machine" in page
    machine_line = next(
        line for line in page.splitlines() if line.startswith("- tiny test machine")
    )
    assert "`cifar10_budget`" not in machine_line  # not trained: it has no CPU to name


def test_curves_grids_and_targets_are_written(built: tuple[Path, InProcess]) -> None:
    runs, _ = built
    page = (runs / "docs" / "results.md").read_text()
    for png in ("results_mnist_fid_vs_kimg.png", "results_mnist_budget.png"):
        path = runs / "docs" / "img" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        Image.open(path).verify()
        assert f"(img/{png})" in page
    assert Image.open(runs / "docs" / "img" / "results_mnist_budget.png").size == (2 + 4 * 18,) * 2
    assert not (runs / "docs" / "img" / "results_cifar10_fid_vs_kimg.png").exists()  # no runs
    assert (
        "mnist_budget (gan-eval, 20 vs 20)" in page
        and "mnist_budget (in-training, 24 vs 32)" in page
    )
    run = RunDir(runs / "budget")
    kimgs = [k for k, _ in run.training_metric("metrics/classifier_fd")]
    assert kimgs == pytest.approx([0.032, 0.064, 0.096])  # G steps 2, 4, 6 x 16 images
    targets = page.split("## Targets")[1]
    assert (
        "| MNIST `mnist_budget`: FID (10k vs 10k train) <= 5 within 1000 kimg | **missing** |"
        in targets
    )
    assert "the health monitor stays quiet" in targets
    assert "## Spread" in page and "`mnist_budget` vs `seed2`" in page


def test_a_second_build_runs_nothing(built: tuple[Path, InProcess]) -> None:
    runs, _ = built
    page = (runs / "docs" / "results.md").read_text()
    again = InProcess(runs / "cache")
    assert build(runs, runner=again) == 0
    assert again.calls == 0
    assert table_rows((runs / "docs" / "results.md").read_text()) == table_rows(page)


@pytest.mark.slow
def test_the_script_runs_gan_eval_and_gan_sample_as_subprocesses(
    runs: Path, tmp_path: Path
) -> None:
    """The real command lines (about 9 s each here): one cell, no curves, one grid."""
    import subprocess

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"runs: [{{dataset: mnist, recipe: mnist_budget, run_dir: {runs / 'budget'}, "
                    "threads: 1, budgets_kimg: [0.064]}]\n")  # fmt: skip
    out = tmp_path / "docs" / "results.md"
    cmd = [sys.executable, str(Path(build_results.__file__)), "--spec", str(spec), "--out", str(out),
           "--cache-dir", str(tmp_path / "cache"), *CHEAP, "--curve-samples", "0",
           "--training-curves", "--eval-arg", f"classifier_path={runs / 'classifier.pt'}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(2 gan-eval/gan-sample runs" in done.stdout
    row = table_rows(out.read_text())[0]
    assert row[:3] == ["`mnist_budget`", "0.064", "0.064 (4)"] and float(row[3]) > 0


def test_a_run_without_its_directory_is_carried_from_the_records(
    built: tuple[Path, InProcess], tmp_path: Path
) -> None:
    runs, _ = built
    page = (runs / "docs" / "results.md").read_text()
    records = json.loads((runs / "results_records.json").read_text())
    assert set(records["runs"]) == {"mnist_budget", "seed2"}  # cifar10_budget has no numbers
    assert [c["budget_kimg"] for c in records["runs"]["mnist_budget"]["cells"]] == [0.064, 0.5]
    # another machine: the same spec and records, none of the run directories
    (tmp_path / "spec.yaml").write_text((runs / "spec.yaml").read_text())
    (tmp_path / "results_records.json").write_text((runs / "results_records.json").read_text())
    elsewhere = InProcess(tmp_path / "cache")
    assert build(tmp_path, runner=elsewhere) == 0
    assert elsewhere.calls == 0  # nothing rescored
    carried = (tmp_path / "docs" / "results.md").read_text()
    assert table_rows(carried) == table_rows(page)
    assert "- `mnist_budget`: built " in carried and "- `seed2`: built " in carried
    targets = lambda text: text.split("## Targets")[1].split("## Missing")[0]  # noqa: E731
    assert targets(carried) == targets(page)
    again = json.loads((tmp_path / "results_records.json").read_text())
    assert again == records  # carried records are rewritten as they were


def test_a_damaged_records_file_is_a_one_line_error(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "spec.yaml").write_text((runs / "spec.yaml").read_text())
    (tmp_path / "results_records.json").write_text('{"version": 1, "runs": {"a": {}}}')
    assert build(tmp_path, runner=InProcess(tmp_path / "cache")) == 2
    err = capsys.readouterr().err.strip()
    assert "results_records.json is not a results records file ('built')" in err
    assert "\n" not in err


def test_a_cell_at_the_curve_counts_is_its_curve_point(runs: Path, tmp_path: Path) -> None:
    """samples: 20 = --curve-samples: the table checkpoint's curve point is the cell's score."""
    (tmp_path / "spec.yaml").write_text(
        "runs:\n  - {dataset: mnist, recipe: mnist_budget, run_dir: "
        f"{runs / 'budget'}, threads: 1, budgets_kimg: [0.064], samples: 20}}\n"
    )
    for name in ("classifier.pt", "classifier.json"):
        (tmp_path / name).symlink_to(runs / name)
    runner = InProcess(tmp_path / "cache")
    assert build(tmp_path, runner=runner) == 0
    assert runner.calls == 1 + 2 + 1  # the cell (step 4), curve steps 2 and 6, the grid
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "0.064 (4), scored 20 vs 20" in page
    record = json.loads((tmp_path / "results_records.json").read_text())["runs"]["mnist_budget"]
    (cell,) = record["cells"]
    point = next(p for p in record["curve"] if p["g_step"] == 4 and p["source"] == "gan-eval")
    assert point["values"]["classifier_fd"] == cell["values"]["classifier_fd"]
    assert point["n_samples"] == cell["n_samples"] == 20
