"""Generators: small trainable models whose output is a flat vector of adapter weights."""

from qcompress.generators.qpa import QPAGenerator, QPAGeneratorConfig

__all__ = ["QPAGenerator", "QPAGeneratorConfig"]
