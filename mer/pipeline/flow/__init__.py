"""Flow topic: Farneback, OpenCV and PyTorch TV-L1, optical strain, flow images, ROI aggregation (kernels) and the
stages ``flow``, ``flow-image`` and ``roi-flow``, registered on import."""

from mer.pipeline.flow import stages as stages
