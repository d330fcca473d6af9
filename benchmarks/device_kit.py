"""Prepare what ``benchmarks/gpu_checks.sh`` needs on a GPU machine that has PyTorch but not the store's packages.

Writes ``.whl/``: wheels (CPython 3.12, manylinux x86-64, the versions installed here) of the packages the GPU image
lacks: zarr and its codecs; and ``.devkit/opencv_reference.npz``: OpenCV's TV-L1 fields of the GPU section's first
pairs and OpenCV's rate on one core, computed here (``bench_flow.py --save-opencv-reference``). Both folders are
git-ignored; the device tool carries them when named in ``carry``. Needs the package registry (pip download).

    make device-kit          # or: .venv/bin/python benchmarks/device_kit.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MISSING_THERE = ["zarr", "numcodecs", "donfig", "google-crc32c"]
"""What the project imports that the GPU image (see the device tool's KINDS.md) does not hold."""
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def main() -> int:
    wheels = ROOT / ".whl"
    wheels.mkdir(exist_ok=True)
    for old in wheels.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={version(name)}" for name in MISSING_THERE]
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", *platform_args, "-d", str(wheels), *pins],
        check=True,
    )
    print(f"{wheels}: " + ", ".join(sorted(p.name for p in wheels.glob("*.whl"))))
    kit = ROOT / ".devkit"
    kit.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_flow.py"), "--save-opencv-reference",
         str(kit / "opencv_reference.npz"), "--repeats", "3"],
        check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
