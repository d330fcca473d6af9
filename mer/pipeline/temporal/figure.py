"""The MESTI figure of ``mer-cli show-mesti``: apex frame, MESTI and dynamic image beside their ARP weights."""

from __future__ import annotations

import numpy as np

from mer.pipeline.image_ops import minmax_uint8
from mer.pipeline.temporal.apex import check_apex
from mer.pipeline.temporal.arp import arp_weights
from mer.pipeline.temporal.rank_pool import rank_pool


def show_mesti_figure(
    frames: np.ndarray,
    apex: int,
    scheme: str = "mesti",
    dynamic_scheme: str = "di",
    title: str | None = None,
    dpi: int = 100,
) -> np.ndarray:
    """Render the apex frame, the MESTI and the dynamic image (min-max scaled) beside their ARP weight curves.

    Uses matplotlib's Agg canvas directly (no pyplot state), so it is safe in workers and tests.

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x 3`` (or ``T x H x W x 1``), grey levels 0..255, onset first.
    apex : int
        0-based position of the apex frame within the clip (onset = 0).
    scheme : str, default "mesti"
        ARP weights of the MESTI panel (``mesti`` | ``mesti-distance``).
    dynamic_scheme : str, default "di"
        ARP weights of the dynamic-image panel (``di`` | ``di-linear``).
    title : str, optional
        Figure title.
    dpi : int, default 100
        Resolution; the figure is 13 x 3.4 inches, so ``1300 x 340`` pixels at 100 dpi.

    Returns
    -------
    numpy.ndarray
        uint8 RGB ``height x width x 3`` image of the figure.

    Raises
    ------
    ValueError
        If ``apex`` is not a position ``0 .. T-1`` or a scheme is unknown.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = np.asarray(frames)
    n = frames.shape[0]
    apex = check_apex(apex, n)
    w_mesti = arp_weights(n, apex, scheme)
    w_dyn = arp_weights(n, None, dynamic_scheme)
    panels = [
        (f"apex frame (t={apex})", np.clip(frames[apex], 0, 255).astype(np.uint8)),
        (f"MESTI ({scheme})", minmax_uint8(rank_pool(frames, w_mesti))),
        (f"dynamic image ({dynamic_scheme})", minmax_uint8(rank_pool(frames, w_dyn))),
    ]
    fig = Figure(figsize=(13, 3.4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4, width_ratios=[1, 1, 1, 1.5])
    for ax, (name, img) in zip(axes[:3], panels, strict=True):
        ax.imshow(img if img.ndim == 3 and img.shape[2] == 3 else img.squeeze(), cmap="gray")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    ax = axes[3]
    t = np.arange(n)
    # Each curve is divided by its largest magnitude so both fit one axis.
    ax.plot(t, w_mesti / max(np.abs(w_mesti).max(), 1e-12), "o-", ms=3, label=f"{scheme} (scaled)")
    ax.plot(t, w_dyn / max(np.abs(w_dyn).max(), 1e-12), "s-", ms=3, label=f"{dynamic_scheme} (scaled)")
    ax.axvline(apex, color="k", ls="--", lw=1, label="apex")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("frame (0 = onset)")
    ax.set_ylabel("weight / max |weight|")
    ax.set_title("ARP weights", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])
