"""Packaging shim: pyproject.toml holds the metadata.

setuptools' declarative ``packages.find`` cannot add a package whose directory
lives elsewhere, and the repository's top-level ``ops/`` folder must be installed
as ``smapgan.builtin_ops`` (never as a top-level ``ops``, a name taken on PyPI).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["smapgan", "smapgan.*"]) + ["smapgan.builtin_ops"],
    package_dir={"smapgan.builtin_ops": "ops"},
)
