"""Benchmark: one STAG training epoch on a CASME II-sized set (255 clips, T×R×2 ROI sequences), CPU or GPU.

Times full epochs of the training step (forward, class-balanced focal loss, backward, AdamW) with the STAG
recipe's extras (ROI flip, MixUp/CutMix on the named inputs, oversampling), the data on the device, for the
full model and the ablations. Prints seconds per epoch and clips per second, then the estimated time of a
26-fold LOSO run of the recipe's 200 epochs (the full-set epoch time × folds × epochs, an upper bound as each
fold trains on ~96 % of the clips). The process CPU time is printed too: on a shared machine it is the
steadier figure::

    python benchmarks/bench_stag.py                       # CPU, stag14, T = 32
    python benchmarks/bench_stag.py --device cuda --epochs 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mer.models import create
from mer.train.losses import FocalLoss, effective_number_weights
from mer.train.mixing import MixConfig, mix_batch
from mer.train.roi_flip import random_flip, roi_flip_permutation
from mer.train.sampling import oversample_rows

VARIANTS = {
    "full": {},
    "no-graph": {"graph": False},
    "no-temporal": {"temporal": False},
    "no-cross": {"cross_attention": False},
    "no-au": {"au": False},
}


def epoch_seconds(model, data, y, device, epochs: int, batch_size: int, roi_set: str) -> tuple[float, float]:
    """Mean wall and process-CPU seconds of one training epoch (after one warm-up epoch)."""
    perm_rois = roi_flip_permutation(roi_set)
    loss_fn = FocalLoss(2.0, effective_number_weights(y.cpu(), 3), 0.1).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-2)
    gen = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)
    mix = MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0, prob=0.5)
    model.train()
    times, cpu = [], []
    for epoch in range(epochs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        rows = torch.as_tensor(oversample_rows(np.arange(len(y)), y.cpu().numpy(), 1.0, rng), device=device)
        rows = rows[torch.randperm(len(rows), generator=gen, device=device)]
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            batch = {k: v[idx] for k, v in data.items() if k in model.input_names}
            batch["roi_flow"] = random_flip(batch["roi_flow"], perm_rois, 0.5, gen)
            batch, soft = mix_batch(batch, y[idx], 3, mix, gen)
            loss = loss_fn(model(**batch), soft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return float(np.mean(times)), float(np.mean(cpu))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=255)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--roi-set", default="stag14")
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs (after one warm-up epoch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--folds", type=int, default=26)
    ap.add_argument("--recipe-epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    r = len(roi_flip_permutation(args.roi_set))
    g = torch.Generator().manual_seed(0)
    data = {
        "roi_flow": torch.randn(args.clips, args.frames, r, 2, generator=g).to(device),
        "au": (torch.rand(args.clips, 21, generator=g) < 0.15).float().to(device),
    }
    y = torch.as_tensor(np.random.default_rng(0).choice(3, args.clips, p=[0.78, 0.12, 0.10]), device=device)
    print(
        f"STAG {args.roi_set}, {args.clips} clips × {args.frames} frames, batch {args.batch_size}, {device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    for name in args.variants.split(","):
        model = create("stag", num_classes=3, roi_set=args.roi_set, **VARIANTS[name]).to(device)
        params = sum(p.numel() for p in model.parameters())
        sec, cpu = epoch_seconds(model, data, y, device, args.epochs, args.batch_size, args.roi_set)
        n_rows = len(oversample_rows(np.arange(args.clips), y.cpu().numpy(), 1.0, np.random.default_rng(0)))
        loso_min = sec * args.folds * args.recipe_epochs / 60
        print(
            f"{name:12s} {params:8d} params  {sec:7.3f} s/epoch (CPU time {cpu:7.3f} s)  {n_rows / sec:6.0f} rows/s  "
            f"LOSO {args.folds}×{args.recipe_epochs} epochs ≈ {loso_min:7.1f} min"
        )


if __name__ == "__main__":
    main()
