"""Fold-parallel training: the folds of a protocol trained together on one device, with sequential arithmetic.

Each fold is the trainer's own step generator (:func:`mer.train.trainer.fit_steps`); up to ``slots`` of them
run interleaved, one optimizer step each in turn, and a finished fold's slot takes the next fold. A fold keeps
everything of its own: model, optimizer, training rows, batch order and augmentation generator (seeded from
the fold's seed, as in the sequential loop), standardisation statistics (inside its model), and its own state
of the default random generator (dropout), swapped in around each of its steps. So every fold performs
exactly the operations, in exactly the order, of sequential training: predictions are bit-identical on the
CPU, and every extra (BatchNorm, dropout, focal loss, MixUp/CutMix, SWA, early stopping on an inner split,
oversampling) works unchanged.

On CUDA each slot issues its work on its own stream, so the many small kernels of several small models
overlap on the device, which one small model leaves mostly idle. On the CPU the interleaving brings no
speed (the cores already run one model's kernels), so the automatic choice there is one fold at a time.

Why not stacked parameters (``torch.func.stack_module_state`` + ``vmap``): measured on this machine's CPU
(4 MEGANet folds at 64 px, batch 32, one thread), one vmapped forward/backward took 480 ms against 258 ms for
the four models one after another, and its gradients differed from the sequential ones (up to 9e-7, grouped
convolutions sum in another order). It also needs every fold at the same batch shape at every step, which
LOSO folds of different sizes are not, and a shared treatment of dropout, early stopping and oversampling.
"""

from __future__ import annotations

import contextlib
import copy
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from mer.train.trainer import History, deterministic_mode

StartFold = Callable[[int], tuple[nn.Module, Generator[None, None, History]]]
FinishFold = Callable[[int, nn.Module, History], None]

MEMORY_SHARE = 0.7  # of the free device memory that the automatic choice plans to use
STATE_COPIES = 6  # weights, gradients, two Adam moments, an early-stopping copy and an SWA average


@dataclass
class _Slot:
    fold: int
    model: nn.Module
    steps: Generator[None, None, History]
    stream: torch.cuda.Stream | None
    rng: torch.Tensor
    cuda_rng: torch.Tensor | None


def train_interleaved(
    n_folds: int,
    slots: int,
    start: StartFold,
    finish: FinishFold,
    device: torch.device,
    deterministic: bool = True,
) -> None:
    """Train folds ``0..n_folds-1``, ``slots`` at a time, interleaved step by step on ``device``.

    ``start(fold)`` seeds and builds the fold's model and returns it with its step generator (nothing runs
    yet); ``finish(fold, model, history)`` is called once the fold has trained (folds may finish out of
    order). Both are called on the fold's stream on CUDA, so all of a fold's memory lives on one stream.
    """
    if slots < 1:
        raise ValueError(f"parallel folds must be at least 1, got {slots}")
    cuda = device.type == "cuda"
    streams = [torch.cuda.Stream(device) for _ in range(min(slots, n_folds))] if cuda else []
    free_streams = deque(streams)
    active: deque[_Slot] = deque()
    pending = iter(range(n_folds))

    def open_slot() -> bool:
        fold = next(pending, None)
        if fold is None:
            return False
        stream = free_streams.popleft() if cuda else None
        if stream is not None:  # the inputs were put on the device on the current stream
            stream.wait_stream(torch.cuda.current_stream(device))
        with _on(stream):
            model, steps = start(fold)  # seeds the default generator with the fold's seed
        cuda_rng = torch.cuda.get_rng_state(device) if cuda else None
        active.append(_Slot(fold, model, steps, stream, torch.get_rng_state(), cuda_rng))
        return True

    with deterministic_mode(deterministic), _closing(active):
        while len(active) < slots and open_slot():
            pass
        while active:
            slot = active.popleft()
            torch.set_rng_state(slot.rng)
            if cuda:
                torch.cuda.set_rng_state(slot.cuda_rng, device)
            with _on(slot.stream):
                try:
                    next(slot.steps)
                    history = None
                except StopIteration as done:
                    history = done.value
            slot.rng = torch.get_rng_state()
            if cuda:
                slot.cuda_rng = torch.cuda.get_rng_state(device)
            if history is None:
                active.append(slot)
                continue
            with _on(slot.stream):
                finish(slot.fold, slot.model, history)
            if slot.stream is not None:
                torch.cuda.current_stream(device).wait_stream(slot.stream)
                free_streams.append(slot.stream)
            del slot  # the finished model goes before the next one is built
            open_slot()


def _on(stream: torch.cuda.Stream | None):
    """Issue work on ``stream``; no-op without one."""
    return contextlib.nullcontext() if stream is None else torch.cuda.stream(stream)


@contextlib.contextmanager
def _closing(active: deque[_Slot]):
    """Close the unfinished folds' generators on the way out (after an error), inside the caller's contexts."""
    try:
        yield
    finally:
        for slot in active:
            slot.steps.close()


def estimate_fold_bytes(model: nn.Module, inputs: Mapping[str, torch.Tensor], batch_size: int, call) -> int:
    """Device bytes one training fold needs: its parameter state and one step's activations (an estimate).

    Parameters: :data:`STATE_COPIES` copies (weights, gradients, Adam moments, best-epoch and SWA copies).
    Activations: the outputs of every leaf module for one batch of ``batch_size`` rows, counted twice
    (kept for the backward pass, and their gradients), measured by one forward pass on the ``meta`` device
    (no memory, no arithmetic). ``call(model, batch)`` runs the model on a dict of named inputs.
    """
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    param_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    shadow = copy.deepcopy(model).to("meta")
    total = [0]

    def count(_module, _args, output) -> None:
        for t in output if isinstance(output, tuple | list) else (output,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * 4  # float32 activations (uint8 inputs become float in the batch)

    leaves = [m for m in shadow.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    batch = {name: torch.empty((batch_size, *t.shape[1:]), device="meta") for name, t in inputs.items()}
    try:
        shadow.train()
        call(shadow, batch)
    finally:
        for h in handles:
            h.remove()
    return STATE_COPIES * param_bytes + 2 * total[0]


def plan_parallel_folds(
    requested: int | None, n_folds: int, device: torch.device, fold_bytes: Callable[[], int]
) -> tuple[int, str]:
    """How many folds to train together, and why (a line for config.json and the console).

    ``requested`` given: that many (at most ``n_folds``). ``None`` (automatic): on CUDA as many as fit in
    :data:`MEMORY_SHARE` of the free device memory at ``fold_bytes()`` each; on the CPU one, as interleaving
    is no faster there (benchmarks/bench_train.py prints the ratio).
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--parallel-folds must be at least 1, got {requested}")
        k = min(requested, n_folds)
        return k, f"{k} of {n_folds} folds at a time (as asked)"
    if device.type != "cuda":
        return 1, "1 fold at a time: on the CPU fold-parallel training is no faster (automatic choice)"
    try:
        need = max(fold_bytes(), 1)
    except (RuntimeError, NotImplementedError) as exc:  # an operation the meta device cannot run
        return 1, f"1 fold at a time: a fold's memory could not be estimated ({type(exc).__name__}); set the number"
    free, _total = torch.cuda.mem_get_info(device)
    k = max(1, min(n_folds, int(MEMORY_SHARE * free // need)))
    return k, (
        f"{k} of {n_folds} folds at a time: about {need / 2**20:.0f} MiB a fold, "
        f"{free / 2**30:.1f} GiB free on {device} (automatic choice, {MEMORY_SHARE:.0%} of free memory)"
    )
