"""Benchmark: whole-tensor LOSO training vs a per-fold DataLoader that reads PNGs from disk every epoch.

Default sizes mimic CASME II (255 clips, 26 subjects, 3x224x224 inputs, 50 epochs, MEGANet). On a CPU,
shrink it, e.g.::

    python benchmarks/bench_train.py --clips 48 --subjects 6 --size 64 --epochs 2 --max-folds 2 --workers 1

Prints, for both paths: total seconds, mean epoch seconds and the fraction of epoch time spent waiting
for data (goal for the whole-tensor path: < 5 %), then the speed ratio (DataLoader time / ours). Then the same
LOSO folds trained one at a time and fold-parallel (``--parallel-folds``, default all folds at once;
mer.train.fold_parallel), their total seconds, whether the predictions are identical, and the ratio (goal on a
GPU: at least 5x; on a CPU interleaving is expected near 1x).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mer.models import create
from mer.train.experiment import run_experiment
from mer.train.losses import make_loss
from mer.train.protocols import Protocol, loso
from mer.train.trainer import TrainConfig, resolve_device


def synthetic(clips: int, subjects: int, size: int, classes: int, seed: int = 0):
    """uint8 images N x 3 x S x S with a class-dependent bright patch, plus a clip table."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, clips)
    X = rng.integers(0, 160, (clips, 3, size, size), dtype=np.uint8)
    p = max(2, size // 8)
    for i, c in enumerate(y):
        r0 = (c * p) % (size - p)
        X[i, :, r0 : r0 + p, r0 : r0 + p] = 250
    meta = pd.DataFrame(
        {
            "dataset": "casme2",
            "subject": [f"{s:02d}" for s in np.sort(rng.integers(0, subjects, clips))],
            "clip_id": [f"clip{i:04d}" for i in range(clips)],
            "label": y,
        }
    )
    # make sure every subject exists
    meta.loc[: subjects - 1, "subject"] = [f"{s:02d}" for s in range(subjects)]
    return X, meta


class PngDataset(Dataset):
    """Reads one PNG per item with OpenCV (BGR -> RGB), optional flip/rotation on the CPU."""

    def __init__(self, paths, labels, train: bool, angles=(-10, -5, 0, 5, 10)):
        self.paths, self.labels, self.train, self.angles = list(paths), list(labels), train, angles

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = cv2.cvtColor(cv2.imread(self.paths[i]), cv2.COLOR_BGR2RGB)
        if self.train:
            if np.random.rand() < 0.5:
                img = img[:, ::-1]
            a = float(np.random.choice(self.angles))
            if a:
                h, w = img.shape[:2]
                m = cv2.getRotationMatrix2D((w / 2, h / 2), -a, 1.0)
                img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h))
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        return (x - 0.5) / 0.25, self.labels[i]


def dataloader_baseline(X, meta, folds, args, cfg: TrainConfig, tmp: Path) -> dict:
    """The common practice: PNG files, a Dataset, a DataLoader per fold, host-to-device copies per batch."""
    device = resolve_device(cfg.device)
    paths = []
    for i in range(len(X)):
        p = tmp / f"{i:04d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(np.ascontiguousarray(X[i].transpose(1, 2, 0)), cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    y = meta["label"].to_numpy()
    k = int(y.max()) + 1
    epoch_times, wait_times = [], []
    t_all = time.perf_counter()
    for fi, fold in enumerate(folds):
        torch.manual_seed(cfg.seed + fi)
        model = create(args.model, k, 3, X.shape[-1], **args.model_options).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = make_loss(cfg.loss, cfg.gamma).to(device)
        train_ds = PngDataset([paths[i] for i in fold.train_idx], y[fold.train_idx], train=True)
        loader = DataLoader(
            train_ds,
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            drop_last=len(train_ds) % cfg.batch_size == 1,
            persistent_workers=False,
        )
        for _ in range(cfg.epochs):
            model.train()
            t0 = time.perf_counter()
            wait = 0.0
            tw = time.perf_counter()
            for xb, yb in loader:
                xb = xb.to(device, non_blocking=True)
                yb = torch.as_tensor(yb).to(device, non_blocking=True)
                wait += time.perf_counter() - tw
                with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda" and cfg.amp):
                    loss = loss_fn(model(xb).float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                tw = time.perf_counter()
            epoch_times.append(time.perf_counter() - t0)
            wait_times.append(wait)
        test_ds = PngDataset([paths[i] for i in fold.test_idx], y[fold.test_idx], train=False)
        model.eval()
        with torch.no_grad():
            for xb, _ in DataLoader(test_ds, batch_size=cfg.eval_batch_size, num_workers=args.workers):
                model(xb.to(device))
    total = time.perf_counter() - t_all
    return {
        "total_s": total,
        "epoch_s": float(np.mean(epoch_times)),
        "data_wait_fraction": float(np.sum(wait_times) / np.sum(epoch_times)),
    }


def fixed_folds(folds) -> Protocol:
    """LOSO with the given (possibly truncated) folds, the same for every path measured."""

    class Fixed(Protocol):
        def folds(self, meta):
            return folds

    return Fixed("loso")


def whole_tensor(X, meta, folds, args, cfg: TrainConfig, out: Path) -> dict:
    """This project's path: one device tensor, per-batch indexing, augmentation on the device."""
    t0 = time.perf_counter()
    res = run_experiment(
        X, meta, fixed_folds(folds), args.model, args.model_options, dataclasses.replace(cfg, profile=True), out
    )
    total = time.perf_counter() - t0
    h = res.history
    return {
        "total_s": total,
        "epoch_s": float(h["epoch_time"].mean()),
        "data_wait_fraction": float(h["data_time"].sum() / h["epoch_time"].sum()),
        "uf1": res.metrics["uf1"],
    }


def fold_parallel_vs_sequential(X, meta, folds, args, cfg: TrainConfig, out: Path) -> dict:
    """The same LOSO folds trained one at a time and ``--parallel-folds`` at a time (no profiling syncs).

    ``--fold-repeats`` rounds in alternating order (the fastest of each counts), so neither path gains from
    running second on a busy machine."""
    times: dict[str, list[float]] = {"sequential": [], "parallel": []}
    results = {}
    plan = (("sequential", 1), ("parallel", args.parallel_folds or len(folds)))
    for r in range(args.fold_repeats):
        for name, k in plan if r % 2 == 0 else plan[::-1]:
            t0 = time.perf_counter()
            results[name] = run_experiment(
                X, meta, fixed_folds(folds), args.model, args.model_options, cfg, out / f"{name}{r}", parallel_folds=k
            )
            times[name].append(time.perf_counter() - t0)
    seq, par = results["sequential"], results["parallel"]
    return {
        "sequential_s": min(times["sequential"]),
        "parallel_s": min(times["parallel"]),
        "k": par.config["parallel_folds"],
        "same_predictions": bool(par.predictions.equals(seq.predictions)),
    }


def warmup(args, X, k: int, device: torch.device) -> None:
    """One untimed forward/backward so that one-off library start-up costs count for neither path."""
    model = create(args.model, k, 3, X.shape[-1], **args.model_options).to(device)
    xb = torch.from_numpy(X[: min(len(X), 4)]).to(device).float()
    opt = torch.optim.Adam(model.parameters())  # its first use imports torch._dynamo (seconds)
    model(xb).sum().backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=255)
    ap.add_argument("--subjects", type=int, default=26)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="meganet")
    ap.add_argument("--model-options", type=json.loads, default={})
    ap.add_argument("--max-folds", type=int, default=None, help="run only the first N LOSO folds")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers for the baseline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--parallel-folds",
        type=int,
        default=None,
        help="folds trained together in the fold-parallel run (default: all)",
    )
    ap.add_argument("--skip-parallel", action="store_true", help="skip fold-parallel against sequential LOSO")
    ap.add_argument(
        "--fold-repeats", type=int, default=1, help="rounds of the fold-parallel comparison (fastest counts)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True

    X, meta = synthetic(args.clips, args.subjects, args.size, args.classes)
    folds = list(loso(meta))[: args.max_folds]
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device)
    device = resolve_device(cfg.device)
    print(
        f"device={device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}) "
        f"clips={args.clips} subjects={args.subjects} size={args.size} epochs={args.epochs} "
        f"folds={len(folds)} model={args.model} batch={args.batch_size}"
    )
    warmup(args, X, args.classes, device)
    with tempfile.TemporaryDirectory() as tmp:
        ours = whole_tensor(X, meta, folds, args, cfg, Path(tmp) / "run")
        print(
            f"whole-tensor: total {ours['total_s']:.2f} s, epoch {ours['epoch_s'] * 1000:.1f} ms, "
            f"data wait {100 * ours['data_wait_fraction']:.2f} % (goal < 5 %)"
        )
        if not args.skip_baseline:
            pngs = Path(tmp) / "png"
            pngs.mkdir()
            base = dataloader_baseline(X, meta, folds, args, cfg, pngs)
            print(
                f"DataLoader+PNG: total {base['total_s']:.2f} s, epoch {base['epoch_s'] * 1000:.1f} ms, "
                f"data wait {100 * base['data_wait_fraction']:.2f} %"
            )
            print(
                f"speed-up (DataLoader / whole-tensor): total x{base['total_s'] / ours['total_s']:.2f}, "
                f"per epoch x{base['epoch_s'] / ours['epoch_s']:.2f}"
            )
        if not args.skip_parallel:
            fp = fold_parallel_vs_sequential(X, meta, folds, args, cfg, Path(tmp) / "folds")
            goal = (
                "goal >= 5x on a GPU"
                if device.type == "cuda"
                else "no GPU here: CPU figure; the goal is >= 5x on a GPU"
            )
            print(
                f"LOSO sequential: total {fp['sequential_s']:.2f} s; fold-parallel ({fp['k']} folds at a time): "
                f"total {fp['parallel_s']:.2f} s; same predictions: {'yes' if fp['same_predictions'] else 'NO'}"
            )
            print(f"speed-up (sequential / fold-parallel): x{fp['sequential_s'] / fp['parallel_s']:.2f} ({goal})")


if __name__ == "__main__":
    main()
