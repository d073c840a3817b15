"""Networks of the zoo: shapes, spectral norm, conditioning, and the generator EMA."""

from __future__ import annotations

from itertools import product

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.ema import GeneratorEMA
from gan_lab.models.gan_module import GANModule
from gan_lab.models.nets.contract import Discriminator, Generator, NetworkArgumentError
from gan_lab.models.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.models.nets.layers import ConditionalBatchNorm2d, ProjectionHead, apply_spectral_norm
from gan_lab.models.nets.mlp import MLPDiscriminator, MLPGenerator
from gan_lab.models.nets.r3gan import R3GANDiscriminator, R3GANGenerator
from gan_lab.models.nets.resnet import ResNetDiscriminator, ResNetGenerator

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_resnet_shapes_and_output_range(size: int, num_classes: int) -> None:
    g = ResNetGenerator(
        latent_dim=16, image_size=size, channels=3, width=16, num_classes=num_classes
    )
    d = ResNetDiscriminator(image_size=size, channels=3, width=16, num_classes=num_classes)
    y = torch.arange(4) % 10 if num_classes else None
    images = g(torch.randn(4, 16), y)
    assert images.shape == (4, 3, size, size)
    assert images.abs().max() <= 1
    assert d(images, y).shape == (4,)
    assert g.num_classes == d.num_classes == num_classes


def test_resnet_matches_the_sngan_cifar_parameter_count() -> None:
    # Miyato et al. 2018, CIFAR-10 ResNet: G ~4.3M, D ~1.1M parameters (width 256 / 128)
    g, d = ResNetGenerator(), ResNetDiscriminator()
    assert 4.2e6 < sum(p.numel() for p in g.parameters()) < 4.4e6
    assert 1.0e6 < sum(p.numel() for p in d.parameters()) < 1.1e6


def test_resnet_uses_the_sngan_xavier_init() -> None:
    """Glorot-uniform: std = gain * sqrt(2 / (fan_in + fan_out)), gain sqrt(2) in residual branches."""
    torch.manual_seed(0)
    block = ResNetGenerator(width=64).blocks[0]
    conv, shortcut = block.residual["conv1"].weight, block.shortcut.weight
    assert conv.std().item() == pytest.approx(2**0.5 * (2 / (64 * 9 + 64 * 9)) ** 0.5, rel=0.05)
    assert shortcut.std().item() == pytest.approx((2 / (64 + 64)) ** 0.5, rel=0.05)


def _sigma(weight: torch.Tensor, dim: int = 0) -> float:
    matrix = weight.movedim(dim, 0).flatten(1)
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def _normalised_weights(net: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    return [(m, m.weight) for m in net.modules() if hasattr(m, "parametrizations")]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResNetDiscriminator(width=16, num_classes=10),
        lambda: DCGANDiscriminator(image_size=32, width=8, spectral_norm=True),
        lambda: DCGANGenerator(latent_dim=8, image_size=32, width=8, spectral_norm=True),
        lambda: MLPDiscriminator(width=16, spectral_norm=True),
    ],
    ids=["resnet_d", "dcgan_d", "dcgan_g", "mlp_d"],
)
def test_spectral_norm_makes_the_largest_singular_value_one(make) -> None:
    torch.manual_seed(0)
    net = make()
    for module, _ in _normalised_weights(net):  # raw weights with largest singular value 5
        original = module.parametrizations.weight.original
        dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
        with torch.no_grad():
            original.mul_(5.0 / _sigma(original, dim))
    net.train()
    for _ in range(30):  # each training-mode access runs one power iteration
        for module, _ in _normalised_weights(net):
            module.weight  # noqa: B018
    weights = _normalised_weights(net)
    assert len(weights) >= 3
    for module, weight in weights:
        dim = 1 if isinstance(module, nn.ConvTranspose2d) else 0
        assert _sigma(weight.detach(), dim) == pytest.approx(1.0, abs=2e-2), module
        assert _sigma(module.parametrizations.weight.original.detach(), dim) == pytest.approx(5.0)


def test_spectral_norm_is_applied_once_and_skips_weightless_layers() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.BatchNorm1d(4))
    apply_spectral_norm(apply_spectral_norm(net))
    assert len(net[0].parametrizations.weight) == 1
    assert not hasattr(net[2], "parametrizations")


def test_conditional_batch_norm_starts_as_plain_batch_norm_and_learns_per_class() -> None:
    cbn, bn = ConditionalBatchNorm2d(4, 3), nn.BatchNorm2d(4)
    x, y = torch.randn(6, 4, 5, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.allclose(cbn(x, y), bn(x), atol=1e-6)
    with torch.no_grad():
        cbn.gain.weight[1] = 2.0
        cbn.bias.weight[2] = -1.0
    out = cbn(x, y)
    assert torch.allclose(out[1], 2 * bn(x)[1], atol=1e-5)
    assert torch.allclose(out[2], bn(x)[2] - 1, atol=1e-5)


def test_projection_head_adds_the_class_embedding_inner_product() -> None:
    head = ProjectionHead(5, num_classes=3)
    h, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 1])
    expected = head.linear(h).squeeze(1) + (head.embed.weight[y] * h).sum(1)
    assert torch.allclose(head(h, y), expected)
    with pytest.raises(ValueError, match="labels"):
        head(h, None)


def test_conditional_generator_learns_class_dependent_outputs() -> None:
    """Train the conditional G to make class k's images brighter with k; same z, different y."""
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=8, image_size=32, channels=1, width=4, num_classes=4)
    opt = torch.optim.Adam(g.parameters(), lr=3e-2)
    target = torch.tensor([-0.6, -0.2, 0.2, 0.6])
    for _ in range(15):
        y = torch.arange(8) % 4
        loss = (g(torch.randn(8, 8), y).mean((1, 2, 3)) - target[y]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.eval()
    z = torch.randn(1, 8).expand(4, 8)
    with torch.no_grad():
        brightness = g(z, torch.arange(4)).mean((1, 2, 3))
    assert torch.all(brightness.diff() > 0.1), brightness
    d = ResNetDiscriminator(image_size=32, channels=1, width=8, num_classes=4)
    x = torch.randn(1, 1, 32, 32).expand(4, 1, 32, 32)
    assert d(x, torch.arange(4)).unique().numel() == 4  # the projection D scores per class too


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: ResNetGenerator(image_size=28), "image_size"),
        (lambda: ResNetDiscriminator(image_size=48), "image_size"),
        (lambda: ResNetGenerator(num_classes=None), "num_classes"),
        (lambda: ResNetDiscriminator(num_classes=-2), "num_classes"),
        (lambda: ResNetDiscriminator(num_classes=None), "num_classes"),
        (lambda: ResNetGenerator(image_size=64, width=8), "width"),
        (lambda: ResNetDiscriminator(channels=2), "channels"),
        (lambda: DCGANGenerator(image_size=48), "image_size"),
        (lambda: MLPGenerator(latent_dim=0), "latent_dim"),
    ],
)
def test_impossible_networks_name_their_own_argument(make, argument: str) -> None:
    """Plain modules know no config keys: the entry point maps the argument to one."""
    with pytest.raises(NetworkArgumentError) as info:
        make()
    assert info.value.argument == argument
    assert not isinstance(info.value, ConfigError)


PROBE_SIZES = (16, 24, 28, 32, 48, 64, 128, 256)
NETWORKS = [
    (MLPGenerator, MLPDiscriminator, set(PROBE_SIZES)),
    (DCGANGenerator, DCGANDiscriminator, {16, 32, 64, 128, 256}),
    (ResNetGenerator, ResNetDiscriminator, {32, 64}),
    (R3GANGenerator, R3GANDiscriminator, {32, 64}),
]


@pytest.mark.parametrize(("g_cls", "d_cls", "sizes"), NETWORKS)
def test_networks_follow_the_contract_and_build_what_they_support(g_cls, d_cls, sizes) -> None:
    """``supports`` (asked of the class) agrees with what the constructor builds."""
    assert g_cls.supports(32, 2) is not None and d_cls.supports(32, 2) is not None
    for size, channels in product(PROBE_SIZES, (1, 3)):
        reason = g_cls.supports(size, channels)
        assert (reason is None) == (size in sizes), (g_cls, size, reason)
        assert d_cls.supports(size, channels) == reason
        if reason is not None:
            for cls in (g_cls, d_cls):
                with pytest.raises(NetworkArgumentError, match=f"image_size={size} is invalid"):
                    cls(image_size=size, channels=channels)
        elif size <= 64:
            g = g_cls(latent_dim=8, image_size=size, channels=channels, width=16)
            d = d_cls(image_size=size, channels=channels, width=16)
            assert isinstance(g, Generator) and isinstance(d, Discriminator)
            assert (g.latent_dim, g.num_classes, d.num_classes) == (8, 0, 0)
            images = g(torch.randn(2, 8), None)
            assert images.shape == (2, channels, size, size)
            assert d(images, None).shape == (2,)


# ------------------------------------------------------------------------------- generator EMA
class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))


@pytest.mark.parametrize("start_step", [0, 3])
def test_ema_weights_equal_the_closed_form_after_k_updates(start_step: int) -> None:
    """With theta_t = t after G step t: copies up to max(start_step, 1), then
    ema_k = d^(k-s) theta_s + (1 - d) * sum_{t=s+1..k} d^(k-t) theta_t."""
    decay, k = 0.9, 8
    g = Scalar()
    ema = GeneratorEMA(g, decay=decay, start_step=start_step)
    for step in range(1, k + 1):
        with torch.no_grad():
            g.w.fill_(float(step))
        ema.update(g, step)
    s = max(start_step, 1)
    expected = decay ** (k - s) * s + (1 - decay) * sum(
        decay ** (k - t) * t for t in range(s + 1, k + 1)
    )
    assert ema.module.w.tolist() == pytest.approx([expected, expected], rel=1e-6)
    assert g.w.tolist() == [8.0, 8.0]  # the live generator is untouched


def test_ema_rampup_shortens_the_half_life_early_and_reaches_the_full_decay() -> None:
    """Half-life min(H, rampup * t) G steps: decay 0.5^(1/(r t)) early, ``decay`` from H/r on."""
    decay, rampup = 0.99, 0.5  # H = 68.97 steps: the ramp ends after step 137
    ema = GeneratorEMA(Scalar(), decay=decay, start_step=2, rampup=rampup)
    assert [ema.decay_at(t) for t in (1, 2)] == [0.0, 0.0]  # copies up to start_step
    assert ema.decay_at(10) == pytest.approx(0.5 ** (1 / 5))
    assert ema.decay_at(137) == pytest.approx(0.5 ** (1 / 68.5))
    assert ema.decay_at(138) == decay and ema.decay_at(10**6) == decay
    no_ramp = GeneratorEMA(Scalar(), decay=decay, start_step=2)
    assert no_ramp.decay_at(10) == decay


def test_ema_with_rampup_equals_a_hand_written_average() -> None:
    g = Scalar()
    ema = GeneratorEMA(g, decay=0.95, start_step=1, rampup=0.25)
    expected = 0.0
    for step in range(1, 40):
        with torch.no_grad():
            g.w.fill_(float(step) ** 0.5)
        ema.update(g, step)
        d = 0.0 if step <= 1 else min(0.95, 0.5 ** (1 / (0.25 * step)))
        expected = d * expected + (1 - d) * float(step) ** 0.5
    assert ema.module.w.tolist() == pytest.approx([expected, expected], rel=1e-6)
    assert int(ema.averaged.n_averaged) == 39  # 1 for the copy, then 1 per average


def test_ema_averages_batch_norm_statistics_and_copies_its_counter() -> None:
    g = nn.BatchNorm1d(3)
    ema = GeneratorEMA(g, decay=0.25, start_step=0)
    means = []
    for step in (1, 2):
        g.train()(torch.randn(8, 3) + 4.0 * step)
        means.append(g.running_mean.clone())
        ema.update(g, step)
    assert ema.module.num_batches_tracked.item() == 2  # a counter: copied, not averaged
    # step 1 copies, step 2 averages
    assert torch.allclose(ema.module.running_mean, 0.25 * means[0] + 0.75 * means[1])


@pytest.mark.parametrize("rampup", [0.0, 1.5])
def test_ema_rampup_out_of_range_names_the_key(rampup: float) -> None:
    with pytest.raises(ConfigError, match=r"model.ema_rampup=.* is invalid"):
        GeneratorEMA(Scalar(), decay=0.99, rampup=rampup)


def test_ema_lives_in_the_module_state_dict() -> None:
    model = GANModule(
        MLPGenerator(width=4), MLPDiscriminator(width=4), torch.optim.Adam, torch.optim.Adam
    )
    keys = model.state_dict().keys()
    assert any(k.startswith("ema.averaged.module.") for k in keys)  # saved in checkpoints
    assert not model.ema.averaged.module.net[0].weight.requires_grad


def test_dcgan_discriminator_without_batch_norm_has_biases_and_is_not_homogeneous() -> None:
    """Bias-free convs + LeakyReLU give D(a x) = a D(x) and D(grey) = 0: BN-free D needs biases."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with_bn = DCGANDiscriminator(image_size=32, width=8)
    assert all(m.bias is None for m in with_bn.modules() if isinstance(m, torch.nn.Conv2d))
    for sn in (False, True):
        no_bn = DCGANDiscriminator(image_size=32, width=8, batch_norm=False, spectral_norm=sn)
        convs = [m for m in no_bn.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(m.bias is not None for m in convs)
        for m in convs:  # zero-initialised biases would hide the difference at init
            torch.nn.init.normal_(m.bias, 0.0, 0.1)
        no_bn.eval()
        with torch.no_grad():
            assert not torch.allclose(no_bn(0.5 * x), 0.5 * no_bn(x), atol=1e-4)
            assert no_bn(torch.zeros(1, 3, 32, 32)).abs().item() > 1e-4


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dcgan_discriminator_bias_overrides_the_batch_norm_default(batch_norm: bool) -> None:
    for bias in (False, True):
        d = DCGANDiscriminator(image_size=32, width=8, batch_norm=batch_norm, bias=bias)
        convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 4 and all((m.bias is not None) == bias for m in convs)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_dcgan_generator_first_layer_matmul_equals_the_transposed_convolution(
    spectral_norm: bool,
) -> None:
    """G runs its 4x4 transposed convolution of z as a matmul: same images, same gradients."""
    torch.manual_seed(0)
    g = DCGANGenerator(
        latent_dim=8, image_size=32, channels=3, width=8, spectral_norm=spectral_norm
    )
    g.eval()  # BatchNorm on running statistics, spectral norm without a power iteration
    z = torch.randn(4, 8)

    def by_convolution() -> torch.Tensor:
        return g.net(z[:, :, None, None])

    for layout in (torch.contiguous_format, torch.channels_last):
        g.to(memory_format=layout)
        first = g._project(z)
        assert first.shape == (4, 32, 4, 4)
        assert first.is_contiguous(memory_format=layout)  # the layout the next layer expects
        assert torch.allclose(first, g.net[0](z[:, :, None, None]), atol=1e-6)
        images = g(z)
        assert torch.allclose(images, by_convolution(), atol=1e-6)
        weight = g.net[0].parametrizations.weight.original if spectral_norm else g.net[0].weight
        grad_matmul = torch.autograd.grad(images.square().sum(), weight)[0]
        grad_conv = torch.autograd.grad(by_convolution().square().sum(), weight)[0]
        assert torch.allclose(grad_matmul, grad_conv, atol=1e-5)
        assert grad_matmul.abs().sum() > 0


def _adversarial_step(g: nn.Module, d: nn.Module, device: str) -> float:
    """One D update and one G update through compiled networks, as GANModule runs them."""
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    real = torch.rand(16, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    z = torch.randn(16, 100, device=device)
    with torch.autocast(device, torch.bfloat16):
        with torch.no_grad():
            fake = g(z)
        d_loss = (
            nn.functional.softplus(-d(real).float()).mean()
            + nn.functional.softplus(d(fake).float()).mean()
        )
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    d.requires_grad_(False)
    with torch.autocast(device, torch.bfloat16):
        g_loss = nn.functional.softplus(-d(g(z)).float()).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    d.requires_grad_(True)
    return float(g_loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_channels_last_dcgan_trains_on_cuda() -> None:
    # regression: compiled G with NHWC weights failed in the backward (inductor stride assertion)
    g = DCGANGenerator(image_size=32).cuda().to(memory_format=torch.channels_last)
    d = DCGANDiscriminator(image_size=32).cuda().to(memory_format=torch.channels_last)
    g.compile()
    d.compile()
    assert all(torch.isfinite(torch.tensor(_adversarial_step(g, d, "cuda"))) for _ in range(2))
