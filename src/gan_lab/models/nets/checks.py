"""Shape checks that turn an impossible architecture into a one-line config error."""

from __future__ import annotations

from gan_lab.errors import ConfigError


def require_power_of_two_size(key: str, image_size: int, minimum: int, maximum: int) -> int:
    """Number of 2x up/down-samplings between a 4x4 feature map and ``image_size``."""
    valid = [2**k for k in range(minimum.bit_length() - 1, maximum.bit_length())]
    if image_size not in valid:
        raise ConfigError(
            key,
            image_size,
            f"this network produces image sizes {valid}; set data.image_size to one of them",
        )
    return image_size.bit_length() - 1 - 2


def require_positive(key: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(key, value, "must be a positive integer")


def require_channels(key: str, channels: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(key, channels, "images have 1 (grey) or 3 (RGB) channels")
