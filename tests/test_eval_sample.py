"""gan-eval and gan-sample on a tiny checkpoint; the metrics callback during training."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lab.errors import ConfigError, UserError, run_cli
from gan_lab.eval import evaluate
from gan_lab.sample import class_grid, interpolation, sample, slerp
from gan_lab.train import CONFIG_PATH


def entry_cfg(name: str, out: Path, *overrides: str) -> DictConfig:
    """The config `gan-eval` / `gan-sample` would run, writing into ``out``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.cache_dir = str(out / "cache")
    return cfg


def test_metrics_are_logged_to_tensorboard_during_training(tiny_gan_run: Path) -> None:
    events = EventAccumulator(str(tiny_gan_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("metrics/classifier_fd", "metrics/classes_hit", "metrics/kl_to_uniform"):
        assert tag in tags
        assert [e.step for e in events.Scalars(tag)] == [2, 4]  # every 2 generator steps
    assert "metrics/class_accuracy" not in tags  # the MLP generator is unconditional
    assert all(0 <= e.value <= 10 for e in events.Scalars("metrics/classes_hit"))


def test_gan_eval_writes_numbers_with_their_protocol(tiny_gan_run: Path, tmp_path: Path) -> None:
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    classifier = tiny_gan_run.parent / "synthetic_classifier.pt"
    cfg = entry_cfg(
        "eval", tmp_path, f"ckpt_path={ckpt}", "metrics=[classifier_fd,class_coverage,class_accuracy]",
        "n_samples=30", "n_reference=40", f"classifier_path={classifier}",
    )  # fmt: skip
    report = evaluate(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert (
        written["global_step"] == 4
        and written["samples"]["n"] == 30
        and written["reference"]["n"] == 40
    )
    fd = written["metrics"]["classifier_fd"]
    assert fd["classifier_fd"] > 0 and "n_real=40, n_fake=30" in fd["protocol"]
    assert sum(written["metrics"]["class_coverage"]["histogram"]) == 30
    assert written["metrics"]["class_accuracy"]["class_accuracy"] is None  # unconditional
    assert "unconditional" in written["metrics"]["class_accuracy"]["unavailable"]
    again = evaluate(cfg)  # same seed, same samples, reference from the cache
    assert again["metrics"]["classifier_fd"] == report["metrics"]["classifier_fd"]
    assert list((tmp_path / "cache" / "metrics").glob("ref-synthetic-train-40-*.pt"))


def test_gan_sample_writes_grid_images_interpolation_and_gif(
    tiny_gan_run: Path, tmp_path: Path
) -> None:
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    cfg = entry_cfg(
        "sample", tmp_path, f"ckpt_path={ckpt}", "n=10", "nrow=5", "interpolation.steps=4"
    )
    written = sample(cfg)
    assert len(written["images"]) == 10
    assert Image.open(written["images"][0]).size == (16, 16)
    width, height = Image.open(written["grid"]).size
    assert (width, height) == (2 + 5 * 18, 2 + 2 * 18)  # 5 x 2 tiles of 16 px with 2 px padding
    assert Image.open(written["interpolation"]).size == (2 + 4 * 18, 2 + 4 * 18)  # 4 rows x 4 steps
    gif = Image.open(written["gif"])
    assert gif.n_frames == 4 + 2  # forwards, then back without repeating the ends
    assert "class_grid" not in written  # unconditional


def test_entry_points_fail_with_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for prog, name, task in (("gan-eval", "eval", evaluate), ("gan-sample", "sample", sample)):
        cfg = entry_cfg(name, tmp_path, f"ckpt_path={tmp_path / 'missing.ckpt'}")
        with pytest.raises(SystemExit) as exit_info:
            run_cli(prog, task, cfg)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert (
            err.startswith(f"{prog}: error: ckpt_path=") and "missing.ckpt' does not exist" in err
        )
        assert "\n" not in err


def test_bad_metric_name_and_bad_counts_name_the_key(tiny_gan_run: Path, tmp_path: Path) -> None:
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="n_samples=1"):
        evaluate(entry_cfg("eval", tmp_path, f"ckpt_path={ckpt}", "n_samples=1"))
    with pytest.raises(ConfigError, match=r"classifier_path=None.*synthetic"):
        evaluate(
            entry_cfg(
                "eval", tmp_path, f"ckpt_path={ckpt}", "metrics=[class_coverage]", "n_samples=4"
            )
        )
    with pytest.raises(UserError, match="ckpt_path is missing"):
        evaluate(entry_cfg("eval", tmp_path))


class ConditionalStub(torch.nn.Module):
    """Generates a constant image whose brightness encodes the class: enough to check the layout."""

    latent_dim, num_classes, device = 3, 4, torch.device("cpu")

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (y.float() / 3 * 2 - 1)[:, None, None, None].expand(len(z), 1, 2, 2)


def test_class_grid_has_one_row_per_class_and_interpolation_keeps_the_class() -> None:
    grid = class_grid(ConditionalStub(), per_class=5, seed=0)
    assert grid.shape == (20, 1, 2, 2)
    assert torch.equal(grid[:, 0, 0, 0], (torch.arange(4).repeat_interleave(5).float() / 3 * 2 - 1))
    strip = interpolation(ConditionalStub(), rows=3, steps=6, seed=0)[:, 0, 0, 0].view(3, 6)
    assert (strip == strip[:, :1]).all()  # one class per row


def test_slerp_ends_at_the_endpoints_and_keeps_the_norm_of_equal_norm_latents() -> None:
    a, b = torch.randn(2, 8), torch.randn(2, 8)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)
    t = torch.linspace(0, 1, 5)[None, :, None]
    path = slerp(a[:, None], b[:, None], t)
    assert torch.allclose(path[:, 0], a, atol=1e-5) and torch.allclose(path[:, -1], b, atol=1e-5)
    assert torch.allclose(path.norm(dim=-1), a.norm(dim=-1, keepdim=True).expand(2, 5), rtol=1e-4)


def test_metrics_callback_without_a_classifier_warns_once_and_skips(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gan_lab.callbacks.periodic_metrics import GeneratorMetrics

    callback = GeneratorMetrics(every_n_steps=1, classifier_path=str(tmp_path / "none.pt"))
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(source="image_folder"), global_rank=0, world_size=1
    )
    module = SimpleNamespace(num_classes=0, device=torch.device("cpu"))
    with pytest.warns(
        UserWarning, match=r"no classifier for data\.source='image_folder'.*skipping"
    ):
        assert callback.evaluate(trainer, module) == {}
    assert callback.disabled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(
            SimpleNamespace(global_step=5, **vars(trainer)), module
        )  # silent now


def test_gan_eval_composes_precision_recall_with_its_k(tmp_path: Path) -> None:
    from gan_lab.eval import chosen_metrics

    cfg = entry_cfg(
        "eval", tmp_path, "metrics=[fid,precision_recall]", "metrics.precision_recall.k=5"
    )
    metrics = chosen_metrics(cfg)
    assert [m.name for m in metrics] == ["fid", "precision_recall"] and metrics[1].k == 5
