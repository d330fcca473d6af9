"""Benchmark: FaceSleuth / MMNet parameter counts, forward + backward time, and the data-wait share of an epoch.

1. Parameter count of every model and ablation at 224 px, 3 classes (printed as a Markdown table).
2. Forward + backward + optimizer step of FaceSleuth (the paper's configuration) at ``--batch`` and ``--size``:
   float32 and, on CUDA, bfloat16 autocast; median of ``--repeats`` timed steps after one warm-up step.
3. The whole-tensor trainer on a synthetic onset/apex/AU set (``--clips``, ``--epochs``, two LOSO folds) with
   profiling on: the share of epoch time spent gathering and augmenting batches (goal < 5 %).

CPU-friendly defaults (seconds here); the issue's figure is ``--batch 32 --size 224``::

    python benchmarks/bench_facesleuth.py                                  # counts + batch 2 at 224 + tiny epoch
    python benchmarks/bench_facesleuth.py --batch 32 --warmup 0 --skip-counts --skip-epoch  # the issue's CPU figure
    python benchmarks/bench_facesleuth.py --batch 32 --clips 256 --epochs 3 --device cuda  # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch

from mer.models import create
from mer.train.experiment import run_experiment
from mer.train.protocols import Protocol, loso
from mer.train.trainer import TrainConfig, resolve_device

ABLATIONS: list[tuple[str, dict]] = [
    ("facesleuth", {}),
    ("facesleuth", {"orientation": "cva"}),
    ("facesleuth", {"orientation": "soa", "shared_theta": True}),
    ("facesleuth", {"orientation": "none"}),
    ("facesleuth", {"fpf": False}),
    ("facesleuth", {"au": False}),
    ("facesleuth", {"fpf": False, "au": False, "orientation": "cva"}),
    ("mmnet", {}),
    ("mmnet", {"position": False}),
]


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_table(classes: int = 3) -> str:
    """Markdown table: model, options, parameters (millions), of which in the FPF / the first FC layer."""
    lines = ["| model | options | parameters | FPF (Swin) | flatten→FC |", "|---|---|---:|---:|---:|"]
    for name, opts in ABLATIONS:
        torch.manual_seed(0)
        m = create(name, classes, **opts)
        fpf = getattr(m, "fpf", None) or getattr(m, "position", None)
        fc = getattr(m, "fc1", None) or getattr(m, "fc", None)
        text = ", ".join(f"{k}={v}" for k, v in opts.items()) or "default"
        lines.append(
            f"| {name} | {text} | {count(m):,} | {count(fpf) if fpf is not None else 0:,} | {count(fc):,} |"
        )
        del m
    return "\n".join(lines)


def time_step(model, batch: dict, device: torch.device, bf16: bool, repeats: int, warmup: int = 1) -> float:
    """Median seconds of one forward + backward + AdamW step (after ``warmup`` untimed steps)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    y = torch.zeros(len(batch["onset"]), dtype=torch.long, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(**batch).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic(clips: int, subjects: int, size: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(clips) % classes
    onset = rng.integers(30, 200, (clips, 3, size, size), dtype=np.uint8)
    apex = onset.copy()
    band = size // classes
    for i, c in enumerate(y):
        apex[i, :, c * band : (c + 1) * band] += 20
    au = (rng.random((clips, 21)) > 0.8).astype(np.float32)
    meta = pd.DataFrame(
        {
            "dataset": "synth",
            "subject": [f"s{i % subjects:02d}" for i in range(clips)],
            "clip_id": [f"c{i}" for i in range(clips)],
            "label": y,
        }
    )
    return {"onset": onset, "apex": apex, "au": au}, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (0: time the first, cold step)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--clips", type=int, default=24, help="synthetic clips for the epoch profile")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--epoch-size", type=int, default=112, help="image size of the epoch profile")
    ap.add_argument("--skip-counts", action="store_true")
    ap.add_argument("--skip-epoch", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device={device} ({name})")

    if not args.skip_counts:
        print("\nparameters at 224 px, 3 classes:\n" + parameter_table())

    torch.manual_seed(0)
    model = create("facesleuth", 3, image_size=args.size).to(device).train()
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    batch = {
        "onset": torch.rand(shape, generator=g, device=device),
        "apex": torch.rand(shape, generator=g, device=device),
        "au": (torch.rand(args.batch, 21, generator=g, device=device) > 0.8).float(),
    }
    modes = [("float32", False)] + ([("bfloat16", True)] if device.type == "cuda" else [])
    for label, bf16 in modes:
        s = time_step(model, batch, device, bf16, max(1, args.repeats), args.warmup)
        print(
            f"\nFaceSleuth forward+backward+step, batch {args.batch}, {args.size} px, {label}: "
            f"{s:.3f} s/step ({args.batch / s:.1f} samples/s)"
        )
    del model, batch

    if not args.skip_epoch:
        inputs, meta = synthetic(args.clips, args.subjects, args.epoch_size, 3)
        folds = list(loso(meta))[:2]

        class Fixed(Protocol):
            def folds(self, meta):
                return folds

        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch, device=str(device), profile=True, optimizer="adamw",
            loss="ce", crop_padding=4, rotation_angles=(-4.0, 0.0, 4.0), lr_groups={"theta": 1e-2},
        )
        res = run_experiment(inputs, meta, Fixed("loso"), "facesleuth", {}, cfg, None)
        h = res.history
        share = float(h["data_time"].sum() / h["epoch_time"].sum())
        print(
            f"\nwhole-tensor epochs ({args.clips} clips, {args.epoch_size} px, batch {args.batch}, 2 folds × "
            f"{args.epochs} epochs): {h['epoch_time'].mean():.2f} s/epoch, data wait {100 * share:.2f} % "
            "(goal < 5 %)"
        )


if __name__ == "__main__":
    main()
