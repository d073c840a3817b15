"""The benchmark scripts run from a clean checkout and report what they claim to measure."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, requires_mnist

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))


def run_script(name: str, *args: str, cwd: Path, timeout: int = 600) -> dict:
    out = cwd / "report.json"
    env = {**os.environ, "GAN_DATA_DIR": str(DATA_DIR), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args, "--json", str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_cpu_budget_clock_counts_the_work_of_child_processes() -> None:
    """The quality budget is CPU time of the trainer *and* its DataLoader workers."""
    import bench_quality

    before = bench_quality.tree_cpu_seconds()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    spent = bench_quality.tree_cpu_seconds() - before
    assert 0.5 <= spent < 5.0


@pytest.mark.slow
@requires_mnist
def test_bench_quality_trains_each_recipe_for_the_budget_and_scores_it(tmp_path: Path) -> None:
    args = "--datasets mnist --steps 3 --samples 40 --no-fid --variant bf16=trainer.precision=bf16-mixed"
    args += " --variant fp32=trainer.precision=32-true"
    cache = ["--cache-dir", str(tmp_path / "cache"), "--keep", str(tmp_path / "keep")]
    report = run_script("bench_quality.py", *args.split(), *cache, cwd=tmp_path)
    rows = report["mnist"]
    assert set(rows) == {"bf16", "fp32", "classic"}
    assert [rows[r]["g_steps"] for r in ("bf16", "fp32", "classic")] == [3, 3, 3]
    assert rows["bf16"]["precision"] == "bf16-mixed" and rows["fp32"]["precision"] == "32-true"
    for row in rows.values():
        assert math.isfinite(row["classifier_fd"]["classifier_fd"]) and row["cpu_s"] > 0
    # each gan-lab run leaves its final checkpoint (G and D), which probe_precision reads
    ckpt = tmp_path / "keep" / "mnist-bf16.ckpt"
    assert sorted(p.name for p in (tmp_path / "keep").glob("*.ckpt")) == [
        "mnist-bf16.ckpt",
        "mnist-fp32.ckpt",
    ]
    probe = subprocess.run(
        [
            *(sys.executable, str(SCRIPTS / "probe_precision.py"), str(ckpt)),
            *("--setup", "dcgan32_mnist", "--batches", "2", "--threads", "1"),
        ],
        env={**os.environ, "GAN_DATA_DIR": str(DATA_DIR)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "G and D at G step 3" in probe.stdout
    assert "| net.0.weight |" in probe.stdout


@pytest.mark.slow
@requires_mnist
def test_bench_throughput_reports_images_per_second_for_each_variant(tmp_path: Path) -> None:
    args = "--setups mlp --variants classic ganlab --rounds 1 --seconds 0.5 --threads 1"
    report = run_script("bench_throughput.py", *args.split(), cwd=tmp_path)
    results = report["setups"]["mlp"]["results"]
    assert all(results[v]["images_per_s"] > 0 and results[v]["steps"] > 0 for v in results)
    assert report["matmul_peak_gflops"]["bf16"] > 0


@requires_mnist
def test_bench_throughput_overhead_setup_times_gan_lab_with_its_default_callbacks(
    tmp_path: Path,
) -> None:
    args = "--setups overhead --variants plain_fp32 ganlab_callbacks --rounds 1 --seconds 0.5"
    report = run_script("bench_throughput.py", *args.split(), "--threads", "1", cwd=tmp_path)
    results = report["setups"]["overhead"]["results"]
    assert set(results) == {"plain_fp32", "ganlab_callbacks"}
    assert all(r["images_per_s"] > 0 and r["steps"] > 0 for r in results.values())


@requires_mnist
def test_ddp_timing_measures_both_strategies_on_two_gloo_processes(tmp_path: Path) -> None:
    import ddp_timing

    report = ddp_timing.compare(["overhead"], steps=8, rounds=1, json_path=tmp_path / "d.json")
    medians = report["overhead"]["median_step_s"]
    assert set(medians) == {"lightning_ddp", "per_network_ddp"}
    assert all(len(m) == 1 and 0 < m[0] < 10 for m in medians.values())
    assert json.loads((tmp_path / "d.json").read_text()) == report


def test_profile_step_buckets_the_dcgan_step_into_its_kernels(tmp_path: Path) -> None:
    args = "--setup dcgan32 --batch 8 --steps 1 --top 5 --layers"
    (report,) = run_script("profile_step.py", *args.split(), cwd=tmp_path)
    assert report["images_per_s"] > 0 and len(report["top"]) == 5
    # every convolution that runs: G's three upsamplings (its 4x4 layer of z is a matmul), D's four
    layers = [(row["layer"], row["input_hw"]) for row in report["layers"]]
    assert layers[0] == ("ConvTranspose2d 256->128", 4) and layers[3] == ("Conv2d 3->64", 32)
    assert len(layers) == 7 and all(row["forward_ms"] > 0 for row in report["layers"])
    # 2 x batch x positions x in x out x 16 taps: D's 64->128 layer maps 16x16 to 8x8
    assert report["layers"][4]["gflop"] == pytest.approx(2 * 8 * 64 * 64 * 128 * 16 / 1e9)
    assert report["buckets"]["convolution"] > 0.1  # a DCGAN step is mostly convolutions
    assert sum(report["buckets"].values()) <= 1.0 + 1e-6


@pytest.mark.slow
@requires_mnist
def test_bench_quality_snapshots_and_score_only_rescore_the_kept_generators(
    tmp_path: Path,
) -> None:
    keep = str(tmp_path / "kept")
    args = "--datasets mnist --cpu-minutes 0.25 --snapshot-minutes 0.1 --samples 60 --no-fid"
    args += f" --snapshot-samples 30 --keep {keep} --cache-dir {tmp_path / 'cache'}"
    trained = run_script("bench_quality.py", *args.split(), cwd=tmp_path)["mnist"]
    assert set(trained) == {"gan-lab@0.1min", "gan-lab", "classic@0.1min", "classic"}
    for recipe in ("gan-lab", "classic"):
        snapshot, final = trained[f"{recipe}@0.1min"], trained[recipe]
        assert 6.0 <= snapshot["cpu_s"] < final["cpu_s"]
        assert snapshot["g_steps"] <= final["g_steps"] and final["g_steps"] > 0
        assert (snapshot["samples"], final["samples"]) == (30, 60)
    # gan-lab scores its EMA generator and keeps the raw G beside it, for inspection only
    assert (tmp_path / "kept" / "mnist-gan-lab.raw.pt").is_file()
    assert (tmp_path / "kept" / "mnist-gan-lab@0.1min.raw.pt").is_file()
    rescored = run_script("bench_quality.py", *args.split(), "--score-only", cwd=tmp_path)["mnist"]
    for label, row in trained.items():  # same generators, same samples, same reals
        assert rescored[label]["classifier_fd"] == row["classifier_fd"]
        assert rescored[label]["g_steps"] == row["g_steps"]
    only = run_script(
        "bench_quality.py", *args.split(), "--score-only", "--only", "classic", cwd=tmp_path
    )["mnist"]
    assert set(only) == {"classic@0.1min", "classic"}
    grids = tmp_path / "grids"
    run_script(
        "bench_quality.py", *args.split(), "--score-only", "--grids", str(grids), cwd=tmp_path
    )
    assert sorted(p.name for p in grids.iterdir()) == [
        "mnist-classic.png", "mnist-classic@0.1min.png", "mnist-gan-lab.png", "mnist-gan-lab@0.1min.png"
    ]  # fmt: skip
    assert only["classic"]["classifier_fd"] == trained["classic"]["classifier_fd"]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GAN_FID_WEIGHTS"), reason="set GAN_FID_WEIGHTS to the FID Inception weights"
)
def test_bench_inception_times_both_layouts_and_finds_the_same_features(tmp_path: Path) -> None:
    report = run_script("bench_inception.py", "--images", "4", "--rounds", "1", cwd=tmp_path)
    assert report["images_per_s"]["nhwc"] > 0 and report["images_per_s"]["nchw"] > 0
    assert report["nhwc_over_nchw"] > 0 and report["max_feature_diff"] < 1e-3


def test_pyspy_summary_buckets_samples_by_the_first_matching_rule() -> None:
    import pyspy_summary

    profile = [
        "<module> (train.py:1);Conv2d._conv_forward (torch/nn/modules/conv.py:543) 6",
        "manual_backward (lightning/x.py:1);_engine_run_backward (torch/autograd/graph.py:1) 3",
        "_FitLoop.run (lightning/pytorch/loops/fit_loop.py:217) 1",
        "",
    ]
    buckets, total = pyspy_summary.summarize(profile)
    assert total == 10
    assert buckets == {
        "forward convolutions (oneDNN)": 6,
        "autograd backward (conv/linear kernels)": 3,
        "Lightning / framework outside the step": 1,
    }


def test_bench_gpu_variants_compose_to_the_settings_their_names_promise(tmp_path: Path) -> None:
    import bench_gpu

    for variant, (kind, overrides) in bench_gpu.VARIANTS.items():
        cfg = bench_gpu.compose("dcgan32", overrides, str(tmp_path))
        assert (cfg.data.source._target_, cfg.data.image_size, cfg.trainer.accelerator) == (
            "gan_lab.data.sources.SyntheticShapes",
            32,
            "gpu",
        )
        precision = "32-true" if "fp32" in variant else "16-mixed" if "fp16" in variant else None
        assert cfg.trainer.precision == (precision or "bf16-mixed"), variant
        nhwc = "_cl" in variant or variant in ("ganlab_guarded", "ganlab_compiled")
        assert cfg.model.channels_last is nhwc, variant
        assert cfg.model.compile_networks is variant.endswith("compiled"), variant
        assert cfg.data.on_device is (not variant.endswith("_host")), variant
        callbacks = set(cfg.get("callbacks") or {})
        assert callbacks == (
            {"divergence_guard", "health_monitor"} if "guarded" in variant else set()
        )
        assert kind == ("plain" if variant.startswith("plain") else "lightning")


def test_bench_gpu_profiles_only_the_timed_steps_and_reports_per_step_costs() -> None:
    import cProfile
    import pstats

    import bench_gpu

    def warmup_work() -> None:
        sum(range(1000))

    def timed_work() -> None:
        sum(range(1000))

    profiler = cProfile.Profile()
    watch = bench_gpu.Stopwatch(warmup=3, steps=4, profiler=profiler, synchronize=lambda: None)
    finished = []
    for step in range(7):
        (warmup_work if step < 3 else timed_work)()
        finished.append(watch.step_done())
    assert finished == [False] * 6 + [True]
    assert watch.seconds > 0
    rows = bench_gpu.host_ms_per_step(pstats.Stats(profiler), steps=4, top=1000)
    names = [function for function, _, _ in rows]
    assert any("timed_work" in name for name in names)
    assert not any("warmup_work" in name for name in names)
    # 4 calls over 4 steps: the per-step figure is one call's time
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = next(v[3] for k, v in stats.items() if k[2] == "timed_work")
    timed = next(row for row in rows if "timed_work" in row[0])
    assert abs(timed[2] - 1e3 * total / 4) < 1e-9


@pytest.mark.parametrize(("warmup", "steps"), [(0, 10), (5, 0)])
def test_bench_gpu_stopwatch_rejects_a_count_it_could_never_time(warmup: int, steps: int) -> None:
    import bench_gpu

    # with warmup=0 the clock never started and the rate came out as steps / time-since-epoch
    with pytest.raises(ValueError, match=f"warmup={warmup}, steps={steps}"):
        bench_gpu.Stopwatch(warmup=warmup, steps=steps, synchronize=lambda: None)


def test_bench_gpu_rejects_zero_warmup_before_looking_for_a_gpu() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_gpu.py"), "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--warmup 0: must be >= 1" in result.stderr


def test_probe_precision_measures_bf16_against_fp32_on_the_same_batch() -> None:
    import torch

    import probe_precision
    from gan_lab.models.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=16, image_size=16, channels=3, width=8).train()
    D = DCGANDiscriminator(image_size=16, channels=3, width=8)
    batches = [(torch.randn(32, 16), torch.rand(32, 3, 16, 16) * 2 - 1) for _ in range(2)]
    fidelity = probe_precision.gradient_fidelity(G, D, batches)
    params = [("G", n) for n, _ in G.named_parameters()] + [
        ("D", n) for n, _ in D.named_parameters()
    ]
    assert {(net, name) for net, name, _ in fidelity} == set(params)
    for (_, _, variant), (cosine, ratio) in fidelity.items():
        if variant.startswith("bf16"):  # rounding moves a gradient by well under 5 degrees
            assert cosine > 0.99 and abs(ratio - 1) < 0.05, (variant, cosine, ratio)
    # another batch moves D's first-layer gradient much further than bf16 does
    assert fidelity["D", "net.0.weight", "fp32 next batch"][0] < 0.9
    rows = probe_precision.d_resolution(D, torch.cat([real for _, real in batches]), [0.5, 16])
    (_, small, _), (_, large, corr_large) = rows
    assert large > 10 * small  # the response grows with the perturbation
    assert corr_large > 0.99  # a 16-level change is far above bf16's rounding
