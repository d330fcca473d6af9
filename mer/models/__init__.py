"""Models: MEGANet, flow networks and timm baselines, built by name through a registry."""

from mer.models.registry import available, create, register

__all__ = ["available", "create", "register"]
