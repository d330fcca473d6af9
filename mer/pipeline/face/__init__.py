"""Face topic: detection, tracked 68-point landmarks, eye-based alignment, equalisation (kernels on RGB uint8
frames, T×H×W×3 clips) and the stages ``detect``, ``landmarks``, ``align``, ``equalize``, registered on import."""

from mer.pipeline.face import stages as stages
