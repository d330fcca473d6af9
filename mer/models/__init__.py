"""Models: MEGANet, FaceSleuth, MMNet, flow networks and timm baselines, built by name through a registry."""

from mer.models.registry import available, create, default_inputs, register

__all__ = ["available", "create", "default_inputs", "register"]
