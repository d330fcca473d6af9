"""Checks a training run passes before any work starts: options, model options, the run folder, the folds.

Each check raises `TrainCheckError` (a ValueError: the CLI shows it as one line and exits 2) whose message names the
option or fold and the value, and says what would be accepted. Nothing here trains, loads or writes.
"""

from __future__ import annotations

import collections.abc
import errno
import inspect
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

_UNIFORM = ("num_classes", "in_channels", "image_size")  # given by the trainer, not by --option
_FOLD_PROTOCOLS_BY_SUBJECT = ("loso", "megc2019")


class TrainCheckError(ValueError):
    """A training option, model option, run folder or fold that cannot give an honest result."""


# ------------------------------------------------------------------ options
def check_train_options(
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    val_fraction: float = 0.0,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    gamma: float = 0.0,
    early_stopping: bool = False,
    protocol: str | None = None,
    out: str | os.PathLike | None = None,
) -> None:
    """Check the numeric training options, the protocol text and the run folder (see `check_protocol_text`,
    `check_out_dir`); ``val_fraction`` 0 means no inner validation split."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainCheckError(f"--epochs {epochs}: must be a whole number ≥ 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TrainCheckError(f"--batch-size {batch_size}: must be a whole number ≥ 1")
    if not _finite(lr) or lr <= 0:
        raise TrainCheckError(f"--lr {lr}: the learning rate must be a number > 0, e.g. 1e-4")
    if not _finite(val_fraction) or not (val_fraction == 0 or 0 < val_fraction < 1):
        raise TrainCheckError(f"--val-fraction {val_fraction}: must be 0 (no inner split) or between 0 and 1, e.g. 0.1")
    if early_stopping and val_fraction == 0:
        raise TrainCheckError("--early-stopping needs --val-fraction > 0 (an inner split of training subjects)")
    if not _finite(weight_decay) or weight_decay < 0:
        raise TrainCheckError(f"--weight-decay {weight_decay}: must be a number ≥ 0")
    if not _finite(label_smoothing) or not 0 <= label_smoothing < 1:
        raise TrainCheckError(f"--label-smoothing {label_smoothing}: must be in [0, 1)")
    if not _finite(gamma) or gamma < 0:
        raise TrainCheckError(f"--gamma {gamma}: the focal loss γ must be a number ≥ 0")
    if protocol is not None:
        check_protocol_text(protocol)
    if out is not None:
        check_out_dir(out)


OPTIMIZERS = ("adam", "adamw", "sgd")  # what the trainer builds (any case)
LOSSES = ("focal", "ce", "cross_entropy", "crossentropy")


def check_named_options(*, optimizer: str, loss: str, device: str, cuda_available: bool) -> None:
    """Check ``--optimizer``, ``--loss`` and ``--device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA only where
    ``cuda_available``), which the trainer would otherwise refuse in the first fold, after the data was read."""
    if optimizer.lower() not in OPTIMIZERS:
        raise TrainCheckError(f"--optimizer {optimizer!r}: choose {', '.join(OPTIMIZERS)}")
    if loss.lower() not in LOSSES:
        raise TrainCheckError(f"--loss {loss!r}: choose focal or ce")
    check_device(device, cuda_available)


def check_device(device: str, cuda_available: bool) -> None:
    """Check ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, CUDA only where ``cuda_available``."""
    if device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise TrainCheckError(f"--device {device!r}: choose auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not cuda_available:
        raise TrainCheckError(f"--device {device}: no CUDA device is available here (use cpu or auto)")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_protocol_text(text: str) -> None:
    """Check the arguments of the protocols whose syntax is known here (``holdout:F[:seed]`` with F in (0, 1),
    ``kfold:K[:seed[:grouped]]`` with K ≥ 2, ``cross:TRAIN:TEST``, ``loso``, ``megc2019``); other names are left to
    the protocol parser."""
    parts = text.strip().split(":")
    name, args = parts[0].lower(), parts[1:]
    where = f"--protocol {text}"
    if name in _FOLD_PROTOCOLS_BY_SUBJECT and args:
        raise TrainCheckError(f"{where}: {name} takes no arguments")
    if name == "holdout":
        if len(args) > 2:
            raise TrainCheckError(f"{where}: expected holdout[:TEST_FRACTION[:SEED]], e.g. holdout:0.1:0")
        if args:
            fraction = _number(args[0], float, where, "the test fraction")
            if not 0 < fraction < 1:
                raise TrainCheckError(f"{where}: the test fraction {args[0]} must be between 0 and 1, e.g. 0.1")
        if len(args) > 1:
            _number(args[1], int, where, "the seed")
    elif name == "kfold":
        if len(args) > 3:
            raise TrainCheckError(f"{where}: expected kfold[:K[:SEED[:grouped]]], e.g. kfold:5:0:grouped")
        if args:
            k = _number(args[0], int, where, "K")
            if k < 2:
                raise TrainCheckError(f"{where}: K = {k} folds; k-fold needs K ≥ 2 (K = 1 leaves no training rows)")
        if len(args) > 1:
            _number(args[1], int, where, "the seed")
        if len(args) > 2 and args[2] not in ("grouped", ""):
            raise TrainCheckError(
                f"{where}: the fourth part must be 'grouped' (whole subjects per fold), not {args[2]!r}"
            )
    elif name == "cross" and (len(args) != 2 or not all(a.strip("+") for a in args)):
        raise TrainCheckError(f"{where}: expected cross:TRAIN[+TRAIN…]:TEST, e.g. cross:casme2+samm:smic")


def _number(text: str, kind: type, where: str, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise TrainCheckError(f"{where}: {what} {text!r} is not {noun}") from None
    if kind is float and not math.isfinite(value):
        raise TrainCheckError(f"{where}: {what} {text!r} is not a finite number")
    return value


def check_out_dir(out: str | os.PathLike) -> None:
    """The run folder must be a folder (existing or to be made) in a place this process can write."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise TrainCheckError(f"--out {path}: is a file; give a folder for the run (it is made when missing)")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise TrainCheckError(f"--out {path}: {probe} is a file, so the run folder cannot be made under it")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "the run folder cannot be written here", str(probe))


# ------------------------------------------------------------ model options
def parse_model_options(items: Iterable[str], model: str) -> dict[str, Any]:
    """``["blocks=2", "widths=[32,64]"]`` → ``{"blocks": 2, "widths": [32, 64]}`` (values read as JSON, else as
    text), checked against the options ``model`` takes (`check_model_options`)."""
    options: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise TrainCheckError(f"--option {item!r}: expected name=value, e.g. blocks=2")
        try:
            options[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[name.strip()] = value
    check_model_options(model, options)
    return options


def model_option_types(model: str) -> tuple[dict[str, Any], bool]:
    """(option name → type annotation, whether other names are accepted too) for a registered model.

    Read from the builder's signature and, when the builder forwards ``**options``, from the ``__init__`` of the
    class it declares it returns. An option without an annotation has the type of its default.
    """
    from mer.models.registry import get_builder

    builder = get_builder(model)
    bound = 0
    while isinstance(builder, partial):
        bound += len(builder.args)
        builder = builder.func
    found, open_ended = _signature_types(builder, skip=bound)
    if open_ended:
        target = _hints(builder).get("return")
        if isinstance(target, type):
            more, open_ended = _signature_types(target.__init__, skip=1)  # self
            found = {**more, **found}
    for name in _UNIFORM:
        found.pop(name, None)
    return found, open_ended


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation that does not resolve: check only what resolves
        return {}


def _signature_types(func: Any, skip: int) -> tuple[dict[str, Any], bool]:
    params = list(inspect.signature(func).parameters.values())[skip:]
    hints = _hints(func)
    types_: dict[str, Any] = {}
    open_ended = False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            open_ended = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            if p.name in hints:
                types_[p.name] = hints[p.name]
            elif p.default is not p.empty and p.default is not None:
                types_[p.name] = type(p.default)
            else:
                types_[p.name] = Any
    return types_, open_ended


def check_model_options(model: str, options: dict[str, Any]) -> None:
    """Each option must be one the model takes, with a value of the declared type (``blocks=abc`` is refused)."""
    try:
        known, open_ended = model_option_types(model)
    except KeyError as exc:
        raise TrainCheckError(f"--model {model}: {exc.args[0]}") from None
    for name, value in options.items():
        if name in _UNIFORM:
            raise TrainCheckError(f"--option {name}={_text(value)}: {name} is set by the trainer from the data")
        if name not in known:
            if open_ended:
                continue
            listing = ", ".join(sorted(known)) or "none"
            raise TrainCheckError(
                f"--option {name}={_text(value)}: {model} has no option {name!r} (options: {listing})"
            )
        expected = known[name]
        if not _matches(value, expected):
            raise TrainCheckError(
                f"--option {name}={_text(value)}: {model}'s {name} takes {_type_name(expected)}, "
                f"not {type(value).__name__}"
            )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _matches(value: Any, expected: Any) -> bool:
    if expected is Any or expected is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(expected)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    container = origin or expected
    if container in (list, tuple, collections.abc.Sequence, Sequence):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # an annotation this check does not understand: let the model decide


def _type_name(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(expected))
    if expected is type(None):
        return "null"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    if expected in names:
        return names[expected]
    if (origin or expected) in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(expected)
        return f"a list ({_type_name(args[0])} each), e.g. [32,64]" if args else "a list, e.g. [32,64]"
    return getattr(expected, "__name__", str(expected))


# -------------------------------------------------------------------- folds
def check_folds(
    folds: Sequence[Any],
    labels: Sequence[Any] | np.ndarray,
    subjects: Sequence[Any] | np.ndarray,
    protocol: str | None = None,
    class_names: Sequence[str] | None = None,
) -> None:
    """After the protocol split: refuse what can only give meaningless metrics.

    ``folds``: objects with ``name``, ``train_idx``, ``test_idx`` (row positions); ``labels`` and ``subjects``: one
    per row (subjects keyed ``dataset/subject``). Errors: fewer than two classes, LOSO over one subject, no folds, a
    fold with no training or no test rows, train and test rows shared, a fold whose training rows hold one class.
    """
    labels = np.asarray(labels)
    subjects = np.asarray(subjects)
    name = (protocol or "the protocol").split(":")[0]

    def class_name(value: Any) -> str:
        if class_names is not None and isinstance(value, int | np.integer) and 0 <= int(value) < len(class_names):
            return str(class_names[int(value)])
        return str(value)

    classes = sorted({class_name(v) for v in labels.tolist()})
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise TrainCheckError(
            f"{len(labels)} clips with {len(classes)} class ({found}): a classifier needs at least two classes; "
            "check --labels and the dataset's emotions"
        )
    n_subjects = len(set(subjects.tolist()))
    if name.lower() in _FOLD_PROTOCOLS_BY_SUBJECT and n_subjects < 2:
        only = subjects[0] if len(subjects) else "none"
        raise TrainCheckError(
            f"--protocol {protocol}: leave-one-subject-out needs at least two subjects, found {n_subjects} ({only}); "
            "use holdout or kfold"
        )
    if not len(folds):
        raise TrainCheckError(f"--protocol {protocol}: gives no folds on these {len(labels)} clips")
    for fold in folds:
        train = np.asarray(fold.train_idx)
        test = np.asarray(fold.test_idx)
        if not len(train):
            raise TrainCheckError(f"--protocol {protocol}: fold {fold.name} has no training rows ({len(test)} test)")
        if not len(test):
            raise TrainCheckError(f"--protocol {protocol}: fold {fold.name} has no test rows ({len(train)} training)")
        shared = np.intersect1d(train, test)
        if len(shared):
            raise TrainCheckError(
                f"--protocol {protocol}: fold {fold.name} shares {len(shared)} rows between train and test"
            )
        train_classes = {class_name(v) for v in labels[train].tolist()}
        if len(train_classes) < 2:
            raise TrainCheckError(
                f"--protocol {protocol}: fold {fold.name}'s {len(train)} training rows hold one class "
                f"({train_classes.pop()!r}); a classifier needs at least two"
            )
