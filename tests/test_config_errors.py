"""Wrong values fail before training with a one-line message naming the value and the options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gan_lab.train import CONFIG_PATH, run
from tests.conftest import run_cli


def run_expecting_user_error(cfg, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["experiment=mnist_dcgan", "data.image_size=48"],
            r"data\.image_size=48 is invalid: .*\[16, 32, 64, 128, 256\]",
        ),
        (
            ["experiment=cifar10_dcgan", "model.generator.channels=1"],
            r"model\.generator\.channels=1 is invalid: must equal data\.channels=3",
        ),
        (["model.n_critic=0"], r"model\.n_critic=0 is invalid"),
        (
            ["trainer.gradient_clip_val=1.0"],
            r"trainer\.gradient_clip_val=1\.0 is invalid: .*model\.grad_clip_g",
        ),
        (
            ["model.optimizer_d.lr=-1"],
            r"model\.optimizer_d\.lr=-1 is invalid: must be a positive number",
        ),
    ],
)
def test_bad_values_fail_before_any_data_loads(
    overrides, expected, make_cfg, capsys, monkeypatch
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("data must not load for an invalid config")

    monkeypatch.setattr("gan_lab.data.datamodule.GANDataModule.prepare_data", no_data)
    cfg = make_cfg(*overrides, "data.data_dir=/nonexistent")
    err = run_expecting_user_error(cfg, capsys)
    assert len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_unknown_generator_lists_the_valid_options(tmp_path: Path) -> None:
    result = run_cli(["model/generator=stylegan9"], tmp_path, timeout=120)
    generators = Path(CONFIG_PATH, "model", "generator").glob("*.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gan-train: error: model/generator=stylegan9 is not an option of group model/generator "
        f"(choose one of {', '.join(sorted(p.stem for p in generators))})"
    ]
    assert not (tmp_path / "logs").exists()  # refused before Hydra made a run directory


def test_cli_reports_an_impossible_image_size_in_one_line(tmp_path: Path) -> None:
    result = run_cli(["experiment=mnist_dcgan", "data.image_size=48"], tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "gan-train: error: data.image_size=48 is invalid" in result.stderr
