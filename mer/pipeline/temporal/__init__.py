"""Temporal topic: ARP weights, Numba rank pooling and network-ready single images (kernels), and the image
stages (MESTI, dynamic image, single frames, difference, raw frames), registered on import."""

from mer.pipeline.temporal import stages as stages
