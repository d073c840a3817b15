"""Argument checks shared by the networks: an impossible architecture fails in its constructor."""

from __future__ import annotations

from gan_lab.models.nets.contract import NetworkArgumentError


def require(argument: str, value: object, reason: str | None) -> None:
    """Raise :class:`NetworkArgumentError` when a check returned a reason."""
    if reason is not None:
        raise NetworkArgumentError(argument, value, reason)


def channels_reason(channels: int) -> str | None:
    return None if channels in (1, 3) else "images have 1 (grey) or 3 (RGB) channels"


def positive_size_reason(image_size: int) -> str | None:
    ok = isinstance(image_size, int) and image_size > 0
    return None if ok else "must be a positive integer (pixels per side)"


def power_of_two_reason(image_size: int, minimum: int, maximum: int) -> str | None:
    valid = power_of_two_sizes(minimum, maximum)
    return None if image_size in valid else f"this network produces image sizes {valid}"


def power_of_two_sizes(minimum: int, maximum: int) -> list[int]:
    return [2**k for k in range(minimum.bit_length() - 1, maximum.bit_length())]


def first_reason(*reasons: str | None) -> str | None:
    return next((r for r in reasons if r is not None), None)


def require_positive(argument: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise NetworkArgumentError(argument, value, "must be a positive integer")


def require_num_classes(num_classes: int | None) -> int:
    """Conditional layers need the number of classes; 0 or None means the config forgot it."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise NetworkArgumentError(
            "num_classes",
            num_classes,
            "a conditional network needs the number of classes (10 for MNIST / CIFAR-10)",
        )
    return num_classes


def require_supported(net: type, image_size: int, channels: int) -> None:
    """The constructor's side of ``supports``: a channel count or size the class cannot build."""
    require("channels", channels, channels_reason(channels))
    require("image_size", image_size, net.supports(image_size, channels))  # type: ignore[attr-defined]
