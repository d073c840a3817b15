"""FID / KID / class metrics against independent numpy/scipy code, on random features (fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from gan_lab.data import GANDataModule
from gan_lab.data.sources import CIFAR10, MNIST, ImageSet
from gan_lab.errors import ConfigError, UserError
from gan_lab.metrics.classifier import (
    ClassifierSpec,
    SmallCNN,
    default_classifier_path,
    load_classifier,
    save_classifier,
)
from gan_lab.metrics.classifier_metrics import coverage_stats
from gan_lab.metrics.features import InceptionExtractor, resolve_inception_weights
from gan_lab.metrics.inception_metrics import IS, KID
from gan_lab.metrics.reference import reference_cache_file, reference_features
from gan_lab.metrics.registry import GeneratorMetric
from gan_lab.metrics.runner import rank_share
from gan_lab.metrics.suite import MetricSuite, flat_scalars
from tests.conftest import CIFAR_AVAILABLE, CIFAR_FOLDER, DATA_DIR, MNIST_AVAILABLE

FID_WEIGHTS = os.environ.get("GAN_FID_WEIGHTS")


class ProjectionExtractor:
    """A stand-in network: a fixed random projection of the pixels, and its first columns as logits."""

    name, protocol = "projection", "random projection (test)"

    def __init__(self, in_dim: int, num_features: int = 16, num_classes: int = 4) -> None:
        self.weight = torch.randn(in_dim, num_features, generator=torch.Generator().manual_seed(1))
        self.num_features, self.num_classes = num_features, num_classes
        self.calls = 0

    def to(self, device: torch.device | str) -> ProjectionExtractor:
        self.weight = self.weight.to(device)
        return self

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        feats = images.to(self.weight.device).flatten(1).float() / 255 @ self.weight
        return feats, feats[:, : self.num_classes]


def numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def numpy_kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    d, m = a.shape[1], a.shape[0]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def images(n: int, seed: int, shift: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 200, (n, 1, 4, 4), generator=g) + shift).clamp(0, 255).to(torch.uint8)


def suite_for(names: list[str | GeneratorMetric], extractor: ProjectionExtractor) -> MetricSuite:
    key = "classifier" if str(names[0]).startswith("class") else "inception"
    return MetricSuite(names, {key: extractor})


def test_fid_and_kid_match_numpy_scipy() -> None:
    ext = ProjectionExtractor(16)
    real, fake = images(300, 0), images(300, 1, shift=40)
    suite = suite_for(["fid", KID(subsets=1, subset_size=300)], ext)
    suite.add_real(real)
    for chunk in fake.split(128):  # batching must not change the result
        suite.add_fake(chunk)
    results = suite.compute()
    a, b = ext(real)[0].double().numpy(), ext(fake)[0].double().numpy()
    assert results["fid"].values["fid"] == pytest.approx(numpy_fid(a, b), abs=1e-3)
    assert results["kid"].values["kid"] == pytest.approx(numpy_kid(a, b), abs=1e-3)
    assert numpy_fid(a, b) > 1.0  # the sets differ, so the comparison is not trivially 0 == 0
    assert "n_real=300, n_fake=300" in results["fid"].protocol


def test_fid_of_a_set_with_itself_is_zero() -> None:
    ext = ProjectionExtractor(16)
    suite = suite_for(["fid"], ext)
    x = images(200, 3)
    suite.add_real(x)
    suite.add_fake(x)
    assert abs(suite.compute()["fid"].values["fid"]) < 1e-3


def test_two_ranks_give_the_single_process_numbers() -> None:
    """Each 'rank' adds a disjoint share; merging the states (what DDP sync does) is exact."""
    ext = ProjectionExtractor(16)
    real, fake = images(77, 4), images(77, 5, shift=20)
    single = suite_for(["fid", KID(subsets=1, subset_size=77)], ext)
    single.add_real(real)
    single.add_fake(fake)
    ranks = [suite_for(["fid", KID(subsets=1, subset_size=77)], ext) for _ in range(2)]
    start = 0
    for rank, suite in enumerate(ranks):
        n = rank_share(len(fake), rank, 2)
        suite.add_real(real[rank::2])
        suite.add_fake(fake[start : start + n])
        start += n
    assert start == len(fake)
    for key in ("fid", "kid"):
        ranks[0].metrics[key].merge_state(ranks[1].metrics[key])
    merged, expected = ranks[0].compute(), single.compute()
    assert merged["fid"].values["fid"] == pytest.approx(expected["fid"].values["fid"], rel=1e-9)
    assert merged["kid"].values["kid"] == pytest.approx(expected["kid"].values["kid"], rel=1e-6)


@pytest.mark.parametrize(("n", "world"), [(10, 3), (7, 8), (1000, 4), (0, 2)])
def test_rank_shares_add_up_to_exactly_n(n: int, world: int) -> None:
    shares = [rank_share(n, r, world) for r in range(world)]
    assert sum(shares) == n and max(shares) - min(shares) <= 1


def test_class_coverage_and_conditional_accuracy() -> None:
    ext = ProjectionExtractor(16, num_classes=4)
    x = images(400, 6)
    predicted = ext(x)[1].argmax(1)
    suite = suite_for(["class_coverage", "class_accuracy"], ext)
    requested = predicted.clone()
    requested[:100] = (predicted[:100] + 1) % 4  # a quarter asked for another class
    suite.add_fake(x, requested)
    res = suite.compute()
    counts = torch.bincount(predicted, minlength=4)
    assert res["class_coverage"].extra["histogram"] == counts.tolist()
    p = counts.double().numpy() / 400
    p = p[p > 0]
    assert res["class_coverage"].values["kl_to_uniform"] == pytest.approx(
        float((p * np.log(p * 4)).sum())
    )
    assert res["class_coverage"].values["classes_hit"] == float((counts > 0).sum())
    assert res["class_accuracy"].values["class_accuracy"] == pytest.approx(0.75)


def test_coverage_of_one_mode_and_of_uniform_samples() -> None:
    assert coverage_stats(torch.tensor([50, 0, 0, 0])) == pytest.approx(
        {"classes_hit": 1.0, "kl_to_uniform": np.log(4)}
    )
    assert coverage_stats(torch.tensor([5, 5, 5, 5])) == pytest.approx(
        {"classes_hit": 4.0, "kl_to_uniform": 0.0}
    )


def test_unconditional_accuracy_is_unavailable_not_a_number() -> None:
    suite = suite_for(["class_accuracy"], ProjectionExtractor(16))
    suite.add_fake(images(10, 7))
    result = suite.compute()["class_accuracy"]
    assert result.values["class_accuracy"] is None and "unconditional" in result.reason
    assert flat_scalars({"class_accuracy": result}) == {}
    json.dumps(result.as_dict(), allow_nan=False)


def test_unknown_metric_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"metrics=\['fid', 'bogus'\].*classifier_fd"):
        MetricSuite(["fid", "bogus"], {})


def test_reference_features_are_cached_and_keyed_by_protocol(tmp_path: Path) -> None:
    ext = ProjectionExtractor(16)
    ref = ImageSet(images(50, 8), torch.zeros(50, dtype=torch.long), ["x"])
    path = reference_cache_file(tmp_path, "mnist", "train", ref, ext)
    first = reference_features(ext, ref, path)
    assert path.is_file() and ext.calls > 0
    calls = ext.calls
    assert (
        torch.equal(reference_features(ext, ref, path), first) and ext.calls == calls
    )  # from disk
    smaller = ImageSet(ref.images[:40], ref.labels[:40], ["x"])
    assert reference_cache_file(tmp_path, "mnist", "train", smaller, ext) != path
    assert reference_cache_file(tmp_path, "cifar10", "train", ref, ext) != path
    path.write_bytes(b"garbage")  # a damaged cache is recomputed, not trusted
    assert torch.equal(reference_features(ext, ref, path), first)


def test_classifier_checksum_is_verified(tmp_path: Path) -> None:
    model = SmallCNN(ClassifierSpec("mnist", 28, 1, 10, stem=4, widths=[8, 8]))
    path = tmp_path / "clf.pt"
    card = save_classifier(model, path, {"test_accuracy": 0.5})
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == card["sha256"]
    loaded = load_classifier(path)
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)  # any size / channels are adapted
    assert torch.allclose(loaded(x)[1], model.eval()(x)[1])
    with open(path, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(UserError, match="sha256"):
        load_classifier(path)


def test_missing_inception_weights_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"inception_weights=.*fid_inception_weights\.py"):
        resolve_inception_weights(str(tmp_path / "nope.pth"))


needs_fid_weights = pytest.mark.skipif(
    not FID_WEIGHTS, reason="set GAN_FID_WEIGHTS to the FID Inception weights file"
)


def test_inception_score_is_unavailable_without_a_classifier_head() -> None:
    ext = ProjectionExtractor(16)
    ext.has_classifier_head = False  # as with the offline FID weights, whose fc is NaN
    suite = MetricSuite([IS(splits=1)], {"inception": ext})
    suite.add_fake(images(4, 9))
    res = suite.compute()["is"]
    assert res.values == {"is": None, "is_std": None} and "classifier head" in res.reason
    json.dumps(res.as_dict(), allow_nan=False)


def test_inception_score_of_confident_diverse_logits_is_the_number_of_classes() -> None:
    ext = ProjectionExtractor(16, num_classes=4)
    suite = MetricSuite([IS(splits=1)], {"inception": ext})
    suite.metrics["is"].update(torch.eye(4).repeat(5, 1).double() * 50)
    assert suite.compute()["is"].values["is"] == pytest.approx(4.0, rel=1e-6)


@pytest.mark.slow  # ~1 min on 2 CPU cores: a 2048x2048 eigen-decomposition
@needs_fid_weights
def test_real_inception_fid_of_a_set_with_itself_is_zero() -> None:
    x = torch.randint(
        0, 256, (6, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    suite = MetricSuite(["fid"], {"inception": InceptionExtractor(FID_WEIGHTS)})
    suite.add_real(x)
    suite.add_fake(x)
    res = suite.compute()["fid"]
    assert abs(res.values["fid"]) < 1e-2
    assert "TF1-compatible bilinear resize" in res.protocol
    assert not suite.extractors["inception"].has_classifier_head  # the converted weights: fc is NaN


@pytest.mark.parametrize(
    ("dataset", "target"), [pytest.param("mnist", 0.99), pytest.param("cifar10", 0.85)]
)
def test_committed_classifier_reaches_its_accuracy_on_the_real_test_split(
    dataset: str, target: float, tmp_path: Path
) -> None:
    """The in-domain metrics are only as good as the classifier: >= 99% MNIST, >= 85% CIFAR-10."""
    if not (MNIST_AVAILABLE if dataset == "mnist" else CIFAR_AVAILABLE):
        pytest.skip(f"needs {dataset} under GAN_DATA_DIR")
    path = default_classifier_path(dataset)
    card = json.loads(path.with_suffix(".json").read_text())
    model = load_classifier(path)
    spec = model.spec
    dm = GANDataModule(
        {"mnist": MNIST, "cifar10": CIFAR10}[dataset](),
        data_dir=str(DATA_DIR),
        path=str(CIFAR_FOLDER) if dataset == "cifar10" else None,
        image_size=spec.image_size,
        channels=spec.channels,
        cache_dir=os.environ.get("GAN_CACHE_DIR", str(tmp_path)),
    )
    test = dm.load_split("test")
    with torch.no_grad():
        predictions = torch.cat([model(chunk)[1].argmax(1) for chunk in test.images.split(1000)])
    accuracy = (predictions == test.labels).float().mean().item()
    assert accuracy >= target
    assert accuracy == pytest.approx(card["test_accuracy"], abs=2e-3)  # the card tells the truth


def test_host_reference_features_go_to_the_device_of_the_metric_states() -> None:
    # cached reference features load on the host while a GPU run keeps the metric states on the
    # GPU; "meta" stands in for the GPU here (a host tensor would fail torchmetrics' device check)
    suite = suite_for(["fid", "kid", "precision_recall"], ProjectionExtractor(16)).to("meta")
    suite.add_real_features("inception", torch.randn(50, 16))
    fid_state = suite.metrics["fid"].real_features_sum
    assert fid_state.device.type == "meta" and fid_state.dtype == torch.float64
    assert suite.metrics["precision_recall"].real_features[0].device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fid_with_host_reference_features_on_the_gpu_equals_the_cpu_fid() -> None:
    ext = ProjectionExtractor(16)
    real, fake = ext(images(300, 0))[0], images(300, 1, shift=40)
    values = []
    for device in ("cpu", "cuda"):
        suite = suite_for(["fid"], ext).to(device)
        suite.add_real_features("inception", real)
        suite.add_fake(fake)
        values.append(suite.compute()["fid"].values["fid"])
    assert values[1] == pytest.approx(values[0], rel=1e-6)
