"""The parameters of Dual TV-L1 flow, shared by the OpenCV kernel (:mod:`mer.pipeline.flow.optical_flow`) and the
PyTorch one (:mod:`mer.pipeline.flow.tvl1_torch`), so that neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of OpenCV's Dual TV-L1 flow (``cv2.optflow.DualTVL1OpticalFlow_create``).

    Defaults are OpenCV's except ``epsilon`` 0.02 (OpenCV: 0.01): on a 256-px face warped by known fields
    of 0.3–3 px with noise, it halves the run time (≈0.44 s instead of ≈0.81 s CPU per pair) with the
    same end-point error (median 0.03–0.07 px where the face moves). 0.05 is faster still (≈0.19 s) but
    ≈1.5× less accurate on sub-pixel motion.

    Attributes
    ----------
    tau : float, default 0.25
        Time step of the numerical scheme (stable for <= 0.25).
    lambda_ : float, default 0.15
        Data-term weight; smaller gives smoother flow.
    theta : float, default 0.3
        Tightness of the coupling between the two sub-problems.
    nscales : int, default 5
        Number of pyramid scales.
    warps : int, default 5
        Warpings per scale.
    epsilon : float, default 0.02
        Stopping threshold of the inner iterations.
    inner_iterations : int, default 30
        Inner iterations per warp.
    outer_iterations : int, default 10
        Outer iterations per warp.
    scale_step : float, default 0.8
        Pyramid scale step.
    gamma : float, default 0.0
        Weight of the gradient-constancy term (0 disables it).
    median_filtering : int, default 5
        Median filter size applied to the flow between warps (odd; 1 disables it).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.02
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5
