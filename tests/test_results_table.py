"""gan_lab.results on scripted inputs: checkpoint picking, run-directory reading, the targets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gan_lab.results.plots import axis_scale, plot_curves
from gan_lab.results.records import CellScore, CurvePoint
from gan_lab.results.report import curve_sources_note, table_row
from gan_lab.results.run_reading import (
    CheckpointInfo,
    RunDir,
    Segment,
    pick_checkpoint,
    seconds_to_step,
)
from gan_lab.results.targets import MET, MISSING, NOT_MET, judge_targets, no_collapse


def ckpt(kimg: float, step: int | None = None) -> CheckpointInfo:
    return CheckpointInfo(Path(f"step_{step or int(kimg)}.ckpt"), step or int(kimg), kimg, "d")


# ----------------------------------------------------------------------------- pure functions
def test_pick_takes_the_checkpoint_nearest_the_budget_and_not_over_it_beyond_1_percent() -> None:
    ckpts = [ckpt(k) for k in (100, 200, 300, 499, 505, 600)]
    assert pick_checkpoint(ckpts, 500).checkpoint.kimg == 499  # 505 is allowed (1%) but farther
    assert pick_checkpoint(ckpts, 503).checkpoint.kimg == 505  # 0.4% over, nearer than 499
    assert pick_checkpoint(ckpts, 550).checkpoint.kimg == 505  # 600 is over by 9%
    assert pick_checkpoint(ckpts, 606).checkpoint.kimg == 600  # 1% short still counts as reached
    far = pick_checkpoint(ckpts, 1000)
    assert not far.reached and far.max_kimg == 600
    assert not pick_checkpoint(ckpts, 50).reached  # the first checkpoint is already past it
    short = pick_checkpoint([ckpt(400), ckpt(600)], 500)
    assert short.checkpoint.kimg == 400 and short.short_of_budget


def test_training_seconds_skip_the_pause_between_a_kill_and_the_resume() -> None:
    first = Segment(100.0, [float(s) for s in range(11)], [110.0 + s for s in range(11)])
    resumed = Segment(1000.0, [8.0, 20.0], [1005.0, 1017.0])  # resumed from step 8
    assert seconds_to_step([first, resumed], 4) == pytest.approx(14.0)
    # all of the first process (20 s), then step 15 interpolated in the second: 1012 - 1000
    assert seconds_to_step([first, resumed], 15) == pytest.approx(32.0)
    assert seconds_to_step([first, resumed], 21) is None


def cell(recipe: str, budget: float, fid: float | None, **kw) -> CellScore:
    dataset = "cifar10" if recipe.startswith("cifar10") else "mnist"
    values = {"fid": fid, "classes_hit": kw.pop("hit", 10.0)}
    return CellScore(recipe, dataset, recipe, budget, kimg=budget, g_step=int(budget), values=values,
                     n_samples=kw.pop("n", 10000), n_reference=10000, **kw)  # fmt: skip


def test_targets_are_judged_from_the_numbers() -> None:
    cells = [
        cell("mnist_budget", 500, 6.1), cell("mnist_budget", 1000, 4.9),
        cell("mnist_budget", 1000, 3.0, repeat_of="mnist_budget"),  # a repeat is not judged
        cell("cifar10_budget", 1000, 40.0), cell("cifar10_budget", 3000, 27.5, hit=9.0),
        cell("cifar10_dcgan", 1000, 45.0), cell("cifar10_dcgan", 3000, 36.0),
    ]  # fmt: skip
    curves = {
        "mnist_budget": [CurvePoint(500, {"fid": 11.5}, 2000, 2000, g_step=500)],
        "cifar10_budget": [CurvePoint(k, {"fid": f}, 2000, 2000, g_step=k, cpu_minutes=m)
                           for k, f, m in ((1000, 50.0, 60.0), (3000, 30.0, 180.0))],
        "cifar10_dcgan": [CurvePoint(k, {"fid": f}, 2000, 2000, g_step=k, cpu_minutes=m)
                          for k, f, m in ((1000, 48.0, 30.0), (3000, 40.0, 90.0))],
    }  # fmt: skip
    results = judge_targets(cells, curves, {"mnist_budget": 0, "cifar10_budget": 2})
    status = [r.status for r in results]
    assert status == [MET, MET, NOT_MET, MET, NOT_MET, NOT_MET, NOT_MET]
    assert "FID 4.9 at 1000 kimg" in results[0].detail
    assert "2.5 above the target" in results[2].detail
    # equal CPU time: 90 min (dcgan's last point); budget's last point within it is 60 min, FID 50
    assert "FID 50 (60 min" in results[4].detail and "vs 40 (90 min" in results[4].detail
    assert "cifar10_budget at 3000 kimg: 9" in results[5].detail
    assert "cifar10_budget: 2 warnings" in results[6].detail


def test_targets_say_missing_and_only_count_10k_scores() -> None:
    cells = [cell("mnist_budget", 1000, 3.0, n=2000)]  # scored at 2k only: not the 10k target
    results = judge_targets(cells, {}, {})
    assert [r.status for r in results] == [MISSING] * 5 + [MET, MISSING]  # classes hit: 10
    cells = [cell("mnist_budget", 500, 8.0), cell("mnist_budget", 1000, 7.0)]
    curves = {"mnist_budget": [CurvePoint(500, {"fid": 14.0}, 2000, 2000, g_step=500)]}
    first, second = judge_targets(cells, curves, {})[:2]
    assert (first.status, second.status) == (NOT_MET, NOT_MET)
    assert "2 above" in first.detail and "FID 14 at 500 kimg: 2 above" in second.detail


def test_equal_kimg_compares_only_cells_scored_with_the_same_sample_count() -> None:
    """A 10k FID is lower than a 2k one of the same G: they must not be compared."""
    ours = cell("cifar10_budget", 1000, 31.7)
    results = judge_targets([ours, cell("cifar10_dcgan", 1000, 30.0, n=2000)], {}, {})
    assert results[3].status == MISSING and "different sample counts" in results[3].detail
    results = judge_targets([ours, cell("cifar10_dcgan", 1000, 30.0)], {}, {})
    assert results[3].status == NOT_MET and "1000 kimg: 31.7 vs 30" in results[3].detail


def test_equal_cpu_time_needs_one_cpu_model_and_reads_the_cells() -> None:
    cells = [
        cell("cifar10_budget", 1000, 31.7, cpu_minutes=124.0),
        cell("cifar10_dcgan", 1000, 40.0, cpu_minutes=110.0),
    ]
    xeon, amd = "Intel Xeon, avx512_bf16", "AMD EPYC, no avx512_bf16"
    other = {
        "cifar10_budget": f"{xeon}, 1 torch threads",
        "cifar10_dcgan": f"{amd}, 1 torch threads",
    }
    result = judge_targets(cells, {}, {}, other)[4]
    assert result.status == MISSING and xeon in result.detail and amd in result.detail
    # one CPU (thread counts differ: CPU-minutes already count them); the table cells are the
    # points: within 110 min the budget recipe has none, so the 2k curve points decide
    same = {"cifar10_budget": f"{amd}, 2 torch threads", "cifar10_dcgan": f"{amd}, 1 torch threads"}
    result = judge_targets(cells, {}, {}, same)[4]
    assert result.status == MISSING and "within 110 CPU-minutes" in result.detail
    cells += [
        cell("cifar10_budget", 3000, 24.0, cpu_minutes=372.0),
        cell("cifar10_dcgan", 3000, 34.0, cpu_minutes=330.0),
    ]
    # within 330 min: the budget recipe's 1000 kimg cell (124 min) vs dcgan's 3000 kimg one
    result = judge_targets(cells, {}, {}, same)[4]
    assert result.status == MET and "FID 31.7 (124 min" in result.detail
    assert "vs 34 (330 min" in result.detail
    assert "10000 samples" in result.detail


def test_equal_cpu_time_judges_a_recipe_on_the_cpu_it_shares_with_the_baseline() -> None:
    """The budget recipe ran on a Xeon (1000 kimg) and again on the AMD of the baseline (500 kimg):
    only the AMD points count, each baseline point against the recipe's last one at <= its time."""
    xeon_cell = cell("cifar10_budget", 1000, 31.7, cpu_minutes=124.0)
    amd_cell = CellScore(**{**cell("cifar10_budget", 500, 38.0, cpu_minutes=81.0).__dict__,
                            "run_id": "cifar10_budget_amd"})  # fmt: skip
    dcgan = cell("cifar10_dcgan", 1000, 42.3, cpu_minutes=104.5)
    machines = {
        "cifar10_budget": "Intel Xeon, avx512_bf16, 1 torch threads",
        "cifar10_budget_amd": "AMD EPYC, 1 torch threads",
        "cifar10_dcgan": "AMD EPYC, 1 torch threads",
    }
    result = judge_targets([xeon_cell, amd_cell, dcgan], {}, {}, machines)[4]
    assert result.status == MET, result.detail
    assert "FID 38 (81 min, 500 kimg) vs 42.3 (104.5 min, 1000 kimg)" in result.detail
    assert "AMD EPYC" in result.detail and "31.7" not in result.detail
    # less CPU time but a worse FID: not ahead
    worse = CellScore(**{**amd_cell.__dict__, "values": {"fid": 45.0, "classes_hit": 10.0}})
    result = judge_targets([xeon_cell, worse, dcgan], {}, {}, machines)[4]
    assert result.status == NOT_MET and "FID 45 (81 min" in result.detail
    # equal kimg: every cell of the recipe at the budget against the baseline's
    result = judge_targets([xeon_cell, amd_cell, dcgan], {}, {}, machines)[3]
    assert result.status == MET and result.detail == "1000 kimg: 31.7 vs 42.3"


def test_equal_cpu_time_judges_every_cpu_both_recipes_ran_on() -> None:
    """Both recipes on a Xeon and on an AMD: ahead on the AMD, behind on the Xeon: not met, and
    the detail shows both CPUs (it used to judge the alphabetically first CPU only)."""

    def on(run_id: str, recipe: str, fid: float, minutes: float) -> CellScore:
        return CellScore(
            **{**cell(recipe, 1000, fid, cpu_minutes=minutes).__dict__, "run_id": run_id}
        )

    cells = [
        on("budget_amd", "cifar10_budget", 38.0, 80.0), on("dcgan_amd", "cifar10_dcgan", 42.0, 100.0),
        on("budget_xeon", "cifar10_budget", 45.0, 60.0), on("dcgan_xeon", "cifar10_dcgan", 40.0, 70.0),
    ]  # fmt: skip
    machines = {
        "budget_amd": "AMD EPYC, 1 torch threads", "dcgan_amd": "AMD EPYC, 1 torch threads",
        "budget_xeon": "Intel Xeon, 1 torch threads", "dcgan_xeon": "Intel Xeon, 1 torch threads",
    }  # fmt: skip
    result = judge_targets(cells, {}, {}, machines)[4]
    assert result.status == NOT_MET, result.detail
    assert "FID 38 (80 min" in result.detail and "AMD EPYC" in result.detail
    assert "FID 45 (60 min" in result.detail and "Intel Xeon" in result.detail
    ahead_on_both = [*cells[:2], on("budget_xeon", "cifar10_budget", 35.0, 60.0), cells[3]]
    assert judge_targets(ahead_on_both, {}, {}, machines)[4].status == MET


def test_a_collapse_after_the_last_cell_is_a_collapse() -> None:
    """The cells hit 10 classes, the run's in-training metrics later hit 3: not met."""
    cells = [cell("mnist_budget", 500, 8.0)]
    healthy = [
        CurvePoint(k, {"classes_hit": 10.0}, 2000, 5000, source="in-training") for k in (50, 500)
    ]
    collapsed = [*healthy, CurvePoint(600, {"classes_hit": 3.0}, 2000, 5000, source="in-training")]
    assert no_collapse(cells, {"mnist_budget": healthy}).status == MET
    result = no_collapse(
        cells, {"mnist_budget": collapsed, "other": [CurvePoint(1, {"fid": 9.0}, 2, 2)]}
    )
    assert result.status == NOT_MET and result.detail == "mnist_budget at 600 kimg (in-training): 3"


def test_a_generator_still_learning_its_classes_is_no_collapse() -> None:
    """9 classes at 100 kimg, 10 from 200 on: met; a cell short of a class is not met."""
    learning = [
        CurvePoint(k, {"classes_hit": n}, 2000, 5000, source="in-training")
        for k, n in ((200, 10.0), (100, 9.0), (300, 10.0))  # order of kimg, not of the list
    ]
    cells = [cell("cifar10_budget", 1000, 30.0)]
    assert no_collapse(cells, {"cifar10_budget": learning}).status == MET
    short = cell("cifar10_budget", 1000, 30.0, hit=9.0)
    result = no_collapse([short], {"cifar10_budget": learning})
    assert result.status == NOT_MET and result.detail == "cifar10_budget at 1000 kimg: 9"


def test_run_dir_lists_one_checkpoint_per_step_and_falls_back_to_mtimes(tmp_path: Path) -> None:
    """last.ckpt at a periodic step is the same state; best.ckpt and files without progress are skipped."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (tmp_path / "config_resolved.yaml").write_text(
        "callbacks: {metrics: {n_samples: 7, n_reference: 9}}\n"
    )
    os.utime(tmp_path / "config_resolved.yaml", (1000.0, 1000.0))
    for name, step in (
        ("step_0000010.ckpt", 10),
        ("last.ckpt", 10),
        ("best.ckpt", 5),
        ("step_0000020.ckpt", 20),
    ):
        progress = {
            "g_step": step,
            "d_updates": step,
            "images_shown": 64 * step,
            "kimg": 0.064 * step,
        }
        torch.save({"progress": progress, "integrity": {"digest": name}}, folder / name)
    torch.save({"state_dict": {}}, folder / "step_0000030.ckpt")  # no progress: an older file
    os.utime(folder / "step_0000020.ckpt", (1090.0, 1090.0))
    run = RunDir(tmp_path)
    assert [(c.path.name, c.kimg) for c in run.checkpoints] == [
        ("step_0000010.ckpt", pytest.approx(0.64)), ("step_0000020.ckpt", pytest.approx(1.28)),
    ]  # fmt: skip
    assert run.checkpoints[1].digest == "step_0000020.ckpt"  # the checkpoint's own digest
    assert run.wall_seconds(run.checkpoints[1]) == (pytest.approx(90.0), "mtime")  # no TensorBoard
    assert run.kimg_at(15) == pytest.approx(0.96) and run.kimg_at(25) == pytest.approx(1.6)
    assert run.training_metric_samples() == (7, 9) and run.health_warnings() is None
    # saved after the last logged g_step of its process: 50 s of the first process + 90 s of its own
    run.__dict__["segments"] = [
        Segment(950.0, [0.0, 5.0], [960.0, 1000.0]),
        Segment(1000.0, [6.0], [1001.0]),
    ]
    assert run.wall_seconds(run.checkpoints[1]) == (pytest.approx(140.0), "mtime")
    assert run.wall_seconds(run.checkpoints[0])[1] == "mtime"  # step 10: past both segments too


def test_distances_get_a_log_axis_and_bounded_panels_a_linear_one() -> None:
    assert axis_scale("fid", [26.0, 6.9]) == "log"
    assert axis_scale("kid", [0.004, -0.0001]) == "linear"  # KID's unbiased estimate can be < 0
    assert axis_scale("classes_hit", [3.0, 10.0]) == "linear"  # a collapse 10 -> 3 stays visible
    assert axis_scale("precision", [0.4, 0.5]) == "linear"
    assert axis_scale("fid", []) == "linear"


def test_a_cell_scored_at_other_counts_than_the_table_says_so() -> None:
    keys = ["fid", "classes_hit"]
    values = {"fid": 14.2, "classes_hit": 10.0}
    cell = CellScore("r", "mnist", "mnist_budget", 500.0, kimg=500.0, g_step=15625,
                     values=values, n_samples=2000, n_reference=2000)  # fmt: skip
    row = table_row(cell, keys, n_samples=10000)
    assert "| 500 (15625), scored 2000 vs 2000 | 14.20 | 10 |" in row
    at_table_counts = CellScore(**{**cell.__dict__, "n_samples": 10000, "n_reference": 10000})
    assert "| 500 (15625) | 14.20 |" in table_row(at_table_counts, keys, n_samples=10000)


def test_the_curve_note_describes_only_the_sources_the_plot_has(tmp_path: Path) -> None:
    training = [CurvePoint(100.0, {"classifier_fd": 2.0}, 2000, 5000, source="in-training")]
    drawn = plot_curves({"cifar10_dcgan": training}, "t", tmp_path / "a.png")
    assert [e.source for e in drawn] == ["in-training"]
    assert curve_sources_note({e.source for e in drawn}) == [
        "`in-training`: the metrics callback's scalars of the run."
    ]
    scored = [CurvePoint(100.0, {"fid": 40.0}, 2000, 2000, g_step=3125)]
    drawn = plot_curves({"a": training, "b": scored}, "t", tmp_path / "b.png")
    (note,) = curve_sources_note({e.source for e in drawn})
    assert note.startswith("`gan-eval` points") and "`in-training`" in note
    assert curve_sources_note(set()) == []


def test_the_spread_compares_a_repeat_only_at_the_counts_of_its_main_cell() -> None:
    from gan_lab.results.build import Results
    from gan_lab.results.report import spread_lines

    main = cell("mnist_budget", 500, 10.3)
    rep = CellScore(**{**cell("mnist_budget", 500, 11.1).__dict__, "run_id": "seed2",
                       "repeat_of": "mnist_budget"})  # fmt: skip
    (line,) = spread_lines(Results(cells=[main, rep]), ["fid"])
    assert line == "- `mnist_budget` at 500 kimg, `mnist_budget` vs `seed2`: FID 10.30 vs 11.10"
    cheap = CellScore(**{**rep.__dict__, "n_samples": 2000, "n_reference": 2000})
    (line,) = spread_lines(Results(cells=[main, cheap]), ["fid"])
    assert "not comparable" in line and "11.10" not in line
