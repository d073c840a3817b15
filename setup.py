"""Packaging that pyproject.toml cannot say: the clone's ``configs/`` ships inside the wheel as
``gan_lab/configs`` (so a non-editable ``pip install .`` has its configs), while the folder stays
where the repository keeps it; ``hydra_plugins`` is a namespace shared with other Hydra plugins.
Metadata and package data are in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages("src", include=["gan_lab*", "hydra_plugins*"]),
        "gan_lab.configs",
    ],
    package_dir={"": "src", "gan_lab.configs": "configs"},
)
