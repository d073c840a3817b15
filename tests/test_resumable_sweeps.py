"""Optuna studies in a database: stopped after 2 trials, continued to 4, summarised as a whole."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.test_sweeps import QUIET, gan_train_in_process

TINY_TRIAL = (
    "data/source=synthetic", "data.channels=1", "data.image_size=16", "data.source.num_samples=64",
    "data.batch_size=16", "model.generator.latent_dim=8", "model.generator.width=16",
    "model.discriminator.width=16", "trainer.max_steps=2", "callbacks.sample_distance.num_samples=32",
    "callbacks.sample_distance.num_projections=16", "~callbacks.sample_grid",
    "~callbacks.metrics", "~callbacks.health_monitor", "~callbacks.real_vs_fake",
)  # fmt: skip


def test_a_study_stopped_after_2_trials_continues_to_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "optuna.db"
    study_args = [
        "-m", "hparams_search=mnist_optuna", f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=resume_me", *TINY_TRIAL, *QUIET,
    ]  # fmt: skip

    def session(n_trials: int, name: str) -> Path:
        sweep_dir = tmp_path / "logs" / "train" / "multiruns" / name
        args = [*study_args, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={sweep_dir}"]
        gan_train_in_process(args, tmp_path, monkeypatch)
        return sweep_dir

    first = session(2, "first")
    study = optuna.load_study(study_name="resume_me", storage=f"sqlite:///{db}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    # baseline_first: trial 0 is the composed recipe, the sampler proposes trial 1
    baseline = {"model.optimizer_g.lr": 2e-4, "model.optimizer_d.lr": 2e-4,
                "model/loss": "non_saturating", "model.n_critic": 1}  # fmt: skip
    assert study.trials[0].params == pytest.approx(baseline)
    assert study.trials[1].params != study.trials[0].params
    study.ask()  # a trial the stopped session never reported (as after Ctrl+C): trial 2, RUNNING

    second = session(4, "second")
    trials = optuna.load_study(study_name="resume_me", storage=f"sqlite:///{db}").trials
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert sorted(p.name for p in second.iterdir() if p.name.isdigit()) == [
        "3",
        "4",
    ]  # trial numbers
    # the reseeded sampler does not propose the first session's parameters again, and the
    # continued study does not run the baseline twice
    first_params = [trials[0].params, trials[1].params]
    assert trials[3].params not in first_params and trials[4].params not in first_params

    with open(second / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["job"] for r in rows) == ["0", "1", "3", "4"]  # every completed trial
    assert all(r["status"] == "ok" for r in rows)
    values = [float(r["sweep/pixel_swd"]) for r in rows]
    assert values == sorted(values)
    by_trial = {str(t.number): t.value for t in trials if t.state == TrialState.COMPLETE}
    for row in rows:  # the summary's numbers are the values Optuna was told
        assert float(row["sweep/pixel_swd"]) == pytest.approx(by_trial[row["job"]], rel=1e-5)
    best = yaml.safe_load((second / "optimization_results.yaml").read_text())["best_value"]
    assert best == min(by_trial.values())
    assert len(list((second / "tensorboard").iterdir())) == 4
    assert (first / "summary.csv").is_file()

    third = session(4, "third")  # the study is complete: nothing more runs
    assert len(optuna.load_study(study_name="resume_me", storage=f"sqlite:///{db}").trials) == 5
    assert not [p for p in third.iterdir() if p.name.isdigit()]


def test_the_budget_search_tries_the_budget_recipe_and_scores_its_classifier_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import math

    import torch

    from gan_lab.metrics.classifier import ClassifierSpec, SmallCNN, save_classifier

    torch.manual_seed(0)
    classifier = tmp_path / "synthetic_classifier.pt"  # untrained: enough for the plumbing
    save_classifier(
        SmallCNN(ClassifierSpec("synthetic", 32, 1, 10, stem=4, widths=[8, 8])), classifier, {}
    )
    sweep_dir = tmp_path / "sweep"
    gan_train_in_process(
        [
            "-m", "hparams_search=mnist_budget_optuna", "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep_dir}", "data/source=synthetic", "data.source.num_samples=64",
            "data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8",
            "trainer.max_kimg=null", "trainer.max_steps=2", "callbacks.metrics.n_samples=32",
            "callbacks.metrics.n_reference=32", f"callbacks.metrics.classifier_path={classifier}",
            "~callbacks.sample_grid", "~callbacks.health_monitor", *QUIET,
        ],
        tmp_path,
        monkeypatch,
    )  # fmt: skip
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["job"] for r in rows) == ["0", "1"] and all(r["status"] == "ok" for r in rows)
    # trial 0 of the in-memory study: configs/experiment/mnist_budget.yaml's own settings
    model = yaml.safe_load((sweep_dir / "0" / "config_resolved.yaml").read_text())["model"]
    assert (model["optimizer_g"]["lr"], model["optimizer_d"]["lr"]) == (2e-4, 2e-4)
    assert (model["optimizer_g"]["betas"][0], model["optimizer_d"]["betas"][0]) == (0.0, 0.0)
    assert (model["regularizer"]["r1_gamma"], model["regularizer"]["r1_interval"]) == (0.05, 4)
    values = [float(r["metrics/classifier_fd"]) for r in rows]
    assert all(math.isfinite(v) and v > 0 for v in values)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(min(values), rel=1e-5)
    for job in ("0", "1"):
        cfg = yaml.safe_load((sweep_dir / job / "config_resolved.yaml").read_text())
        model = cfg["model"]
        assert model["loss"]["_target_"].endswith("RpGANLoss")  # the budget recipe's loss
        assert model["regularizer"]["r2_gamma"] == model["regularizer"]["r1_gamma"]
        assert 0.01 <= model["regularizer"]["r1_gamma"] <= 1.0
        assert model["regularizer"]["r1_interval"] in (1, 4, 16)
        assert model["optimizer_g"]["betas"][0] in (0.0, 0.5)
        assert model["optimizer_d"]["betas"][1] == 0.99  # only beta1 is searched
        assert 1e-4 <= model["optimizer_g"]["lr"] <= 1e-3


def test_a_baseline_needs_a_value_of_every_searched_parameter() -> None:
    from omegaconf import OmegaConf

    from gan_lab.errors import ConfigError
    from gan_lab.optuna_study import recipe_params

    config = OmegaConf.create(
        {"model": {"lr": 1e-3, "betas": [0.0, 0.99], "loss": {"_target_": "x"}},
         "hydra": {"runtime": {"choices": {"model/loss": "hinge"}}}}
    )  # fmt: skip
    names = ["model.lr", "model.betas.0", "model/loss"]
    assert recipe_params(config, names) == {
        "model.lr": 1e-3,
        "model.betas.0": 0.0,
        "model/loss": "hinge",
    }
    for bad in ("model.width", "model.loss", "model/augment"):
        with pytest.raises(ConfigError, match=f"searched '{bad}'.*baseline_first=false"):
            recipe_params(config, [bad])
