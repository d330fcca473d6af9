"""The MESTI-MEGANet paper's experiments as grids of runs: which input, network, datasets, protocol and labels
give each published number (``mer-cli reproduce NAME``). The numbers themselves are data: ``published.json``.

A *run* is one training under one protocol (one run folder); a *cell* is one number of a table, read from a
run's pooled metrics (``source="all"``) or its per-dataset metrics (``source=<dataset>``). Several cells can share a
run (a MEGC 2019 composite run gives every dataset's UF1, UAR and ACC). Where the paper leaves a choice open,
the grid makes one and says so in the experiment's ``notes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mer.config import stable_hash

IMAGE_SIZE = 224
APEX = {"mode": "annotated", "fallback": "middle"}  # the apex stage; SMIC has no apex annotation: its middle frame
DATASET_LABELS = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS"}


@dataclass(frozen=True)
class InputSpec:
    """A stored input: the stage read for training and the parameters of it and its upstream stages."""

    label: str
    stage: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "stage": self.stage, "params": self.params}


@dataclass(frozen=True)
class RunSpec:
    """One training run: input × network (with options) × datasets × protocol × label set."""

    input: InputSpec
    model: str
    datasets: tuple[str, ...]
    protocol: str
    labels: str | None
    model_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input.to_dict(),
            "model": self.model,
            "model_options": self.model_options,
            "datasets": list(self.datasets),
            "protocol": self.protocol,
            "labels": self.labels,
        }

    @property
    def identity(self) -> str:
        return stable_hash(self.to_dict())[:12]


@dataclass(frozen=True)
class Cell:
    """One table number: ``metric`` of ``run`` over ``source`` (``all`` or a dataset name)."""

    row: str
    column: str
    run: RunSpec
    metric: str
    source: str = "all"


@dataclass
class Experiment:
    """A table of the paper: its cells, the rows it cannot reproduce (with the reason) and notes on choices."""

    name: str
    title: str
    table: str
    rows: list[str]
    columns: list[str]
    cells: list[Cell]
    not_reproduced: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def runs(self) -> list[RunSpec]:
        """The distinct runs of the grid, in cell order."""
        seen: dict[str, RunSpec] = {}
        for cell in self.cells:
            seen.setdefault(cell.run.identity, cell.run)
        return list(seen.values())


def published(name: str) -> dict[str, dict[str, float]]:
    """The paper's numbers of experiment ``name``: row -> column -> value (fractions)."""
    data = json.loads(resources.files("mer.train").joinpath("published.json").read_text())
    return data["experiments"][name]["values"]


# ------------------------------------------------------------------------------------------------ inputs
def _image(
    stage: str, label: str, size: int = IMAGE_SIZE, apex: dict[str, Any] | None = None, **extra: Any
) -> InputSpec:
    """A single-image input; ``apex`` gives the parameters of the apex stage it reads (None: it reads none)."""
    params = {"size": size, "norm": "minmax"} | extra
    return InputSpec(label, stage, ({"apex": apex} if apex is not None else {}) | {stage: params})


def _flow(label: str, pair: int, size: int = IMAGE_SIZE) -> InputSpec:
    flow = {"method": "farneback", "pairs": "onset-apex,apex-offset"}
    return InputSpec(label, "flow-image", {"apex": APEX, "flow": flow, "flow-image": {"pair": pair, "size": size}})


def apex_frame() -> InputSpec:
    return _image("apex-frame", "Apex frame", apex=APEX)


def mesti(apex: str = "annotated") -> InputSpec:
    label = "MESTI" if apex == "annotated" else f"MESTI ({apex} apex)"
    return _image("mesti", label, apex={"mode": apex, "fallback": "middle" if apex == "annotated" else None})


def dynamic_image() -> InputSpec:
    return _image("dynamic", "Dynamic image", scheme="di")


TRAIN_NOTES = [
    "Training as published: focal loss, Adam, 50 epochs, no scheduler, flip and ±5°/±10° rotations; "
    "learning rate and weight decay 1e-4 (the paper's values were lost in extraction). No early stopping, no "
    "epoch or threshold chosen on a test fold: the model after the last epoch is evaluated.",
]

# ------------------------------------------------------------------------------------------------ tables
NETS = {"vgg19": "VGG19", "resnet50": "ResNet50", "efficientnet_b0": "EfficientNet-B0"}


def modalities() -> Experiment:
    """Table 1: input modalities × VGG19 / ResNet50 / EfficientNet-B0, 90/10 split, CASME II and SAMM, ACC."""
    inputs = [apex_frame(), _flow("Optical flow (onset-apex)", 0), _flow("Optical flow (apex-offset)", 1),
              dynamic_image(), mesti()]
    cells, columns = [], []
    for model, model_label in NETS.items():
        for ds in ("casme2", "samm"):
            column = f"{model_label} {DATASET_LABELS[ds]} ACC"
            columns.append(column)
            for spec in inputs:
                run = RunSpec(spec, model, (ds,), "holdout:0.1:0", "5class")
                cells.append(Cell(spec.label, column, run, "acc"))
    rows = [s.label for s in inputs[:4]] + ["Affective motion image", "Active image", "MESTI"]
    return Experiment(
        "modalities",
        "Input modalities across CNNs (90/10 split, accuracy)",
        "Table 1",
        rows,
        columns,
        cells,
        not_reproduced={
            "Affective motion image": "no public formula (methods.md §1)",
            "Active image": "no public formula (methods.md §1)",
        },
        notes=TRAIN_NOTES + [
            "Protocol as published: one stratified 90/10 split of the clips (seed 0). It is subject-dependent "
            "(a person's clips on both sides); --subject-independent holds out whole subjects instead.",
            "Labels: 5 classes per dataset (the paper's 26 CASME II / 16 SAMM test clips match 10 % of them).",
            "Networks trained from scratch (no weights are downloaded); --pretrained uses locally cached ImageNet "
            "weights. Optical flow: Farneback on the aligned faces, (u, v, strain) flow image at 224×224.",
        ],
    )


def networks() -> Experiment:
    """Table 2: MESTI in place of the original input of published networks (LOSO, ACC)."""
    cells = []
    columns = [f"{DATASET_LABELS[ds]} ACC" for ds in ("casme2", "samm")]
    for spec, row in ((dynamic_image(), "Dynamic image -> VGG19"), (mesti(), "MESTI -> VGG19")):
        for ds in ("casme2", "samm"):
            run = RunSpec(spec, "vgg19", (ds,), "loso", "5class")
            cells.append(Cell(row, f"{DATASET_LABELS[ds]} ACC", run, "acc"))
    rows = ["Dynamic image -> VGG19", "MESTI -> VGG19", "Apex frame -> Micro-attention", "MESTI -> Micro-attention"]
    reason = "Micro-attention (Wang et al. 2020) is not implemented in mer"
    return Experiment(
        "networks",
        "MESTI as the input of published networks (LOSO, accuracy)",
        "Table 2",
        rows,
        columns,
        cells,
        not_reproduced={rows[2]: reason, rows[3]: reason},
        notes=TRAIN_NOTES + ["Labels: 5 classes per dataset (the paper does not say which)."],
    )


def _loso_metrics(row: str, run: RunSpec, datasets: tuple[str, ...]) -> list[Cell]:
    return [
        Cell(row, f"{DATASET_LABELS[ds]} {m.upper()}", run, m, ds)
        for ds in datasets
        for m in ("uf1", "uar", "acc")
    ]


def meganet_3class() -> Experiment:
    """Table 3: MESTI + MEGANet, MEGC 2019 composite LOSO, per-dataset UF1 / UAR / ACC."""
    order = ("casme2", "smic", "samm")
    run = RunSpec(mesti(), "meganet", ("casme2", "samm", "smic"), "megc2019", "3class")
    cells = _loso_metrics("MESTI-MEGANet", run, order)
    return Experiment(
        "meganet-3class",
        "MESTI-MEGANet, 3 classes, MEGC 2019 composite LOSO",
        "Table 3",
        ["MESTI-MEGANet"],
        [c.column for c in cells],
        cells,
        notes=TRAIN_NOTES + ["Per-dataset scores from the pooled predictions of the one composite run."],
    )


def meganet_5class() -> Experiment:
    """Table 4: MESTI + MEGANet, 5 classes, LOSO on CASME II and on SAMM."""
    cells = []
    for ds in ("casme2", "samm"):
        cells += _loso_metrics("MESTI-MEGANet", RunSpec(mesti(), "meganet", (ds,), "loso", "5class"), (ds,))
    return Experiment(
        "meganet-5class",
        "MESTI-MEGANet, 5 classes, LOSO per dataset",
        "Table 4",
        ["MESTI-MEGANet"],
        [c.column for c in cells],
        cells,
        notes=TRAIN_NOTES,
    )


CROSS = (("casme2", "smic"), ("samm", "smic"))


def _cross_cells(row: str, spec: InputSpec, model_options: dict[str, Any] | None = None) -> list[Cell]:
    cells = []
    for train, test in CROSS:
        run = RunSpec(spec, "meganet", (train, test), f"cross:{train}:{test}", "3class", model_options or {})
        name = f"{DATASET_LABELS[train]}->{DATASET_LABELS[test].split('-')[0]}"
        cells += [Cell(row, f"{name} ACC", run, "acc"), Cell(row, f"{name} WF1", run, "wf1")]
    return cells


def _cross_columns() -> list[str]:
    return [c.column for c in _cross_cells("x", mesti())]


def cross() -> Experiment:
    """Table 5: train on CASME II or SAMM, test on SMIC (3 classes), ACC and WF1."""
    return Experiment(
        "cross",
        "MESTI-MEGANet across datasets (train CASME II or SAMM, test SMIC)",
        "Table 5",
        ["MESTI-MEGANet"],
        _cross_columns(),
        _cross_cells("MESTI-MEGANet", mesti()),
        notes=TRAIN_NOTES + ["SMIC has no apex annotation: its MESTI uses the middle frame (as the paper)."],
    )


ABLATION_NOTE = (
    "The paper does not name the ablations' dataset; their full-model row equals its SMIC-HS 3-class LOSO result "
    "(UF1 0.917, UAR 0.924, ACC 92.68), so they run on SMIC-HS, 3 classes, LOSO."
)


def _smic_cells(row: str, options: dict[str, Any]) -> list[Cell]:
    run = RunSpec(mesti(), "meganet", ("smic",), "loso", "3class", options)
    return [Cell(row, m.upper(), run, m) for m in ("uf1", "uar", "acc")]


def ablation_modules() -> Experiment:
    """Table 6: gradient attention / residual connection / self-attention switched off and on."""
    rows = {
        "residual only": {"gradient_attention": False, "residual": True, "self_attention": False},
        "self-attention only": {"gradient_attention": False, "residual": False, "self_attention": True},
        "residual + self-attention": {"gradient_attention": False, "residual": True, "self_attention": True},
        "gradient attention only": {"gradient_attention": True, "residual": False, "self_attention": False},
        "all three (MEGANet)": {},
    }
    cells = [c for row, opts in rows.items() for c in _smic_cells(row, opts)]
    return Experiment(
        "ablation-modules",
        "MEGANet modules (gradient attention, residual connection, self-attention)",
        "Table 6",
        list(rows),
        ["UF1", "UAR", "ACC"],
        cells,
        notes=TRAIN_NOTES + [
            ABLATION_NOTE,
            "Rows follow the table's check marks; the paper's text names the 0.746 row 'residual only', the "
            "table 'self-attention only'. Without the residual block the blocks keep their two convolutions.",
        ],
    )


def ablation_blocks() -> Experiment:
    """Table 7: 2, 3 or 4 residual-attention blocks."""
    rows = {f"{n} blocks": {"blocks": n} for n in (2, 3, 4)}
    rows["3 blocks"] = {}
    cells = [c for row, opts in rows.items() for c in _smic_cells(row, opts)]
    return Experiment(
        "ablation-blocks", "Number of residual-attention blocks", "Table 7", list(rows), ["UF1", "UAR", "ACC"],
        cells, notes=TRAIN_NOTES + [ABLATION_NOTE],
    )


def ablation_attention() -> Experiment:
    """Table 8: the gradient attention block replaced by none, SE or CBAM (cross-dataset)."""
    rows = {"none": "none", "SE": "se", "CBAM": "cbam", "gradient attention": None}
    cells = []
    for row, kind in rows.items():
        cells += _cross_cells(row, mesti(), {"input_attention": kind} if kind else {})
    return Experiment(
        "ablation-attention", "Input attention type (cross-dataset)", "Table 8", list(rows), _cross_columns(), cells,
        notes=TRAIN_NOTES,
    )


def apex_choice() -> Experiment:
    """Table 9: apex frame, dynamic image, MESTI on the middle frame and on the annotated apex (cross-dataset)."""
    inputs = {
        "Apex frame": apex_frame(),
        "Dynamic image": dynamic_image(),
        "MESTI (middle frame as apex)": mesti("middle"),
        "MESTI (annotated apex)": mesti(),
    }
    cells = [c for row, spec in inputs.items() for c in _cross_cells(row, spec)]
    return Experiment(
        "apex", "Apex choice and inputs (cross-dataset)", "Table 9", list(inputs), _cross_columns(), cells,
        notes=TRAIN_NOTES + ["SMIC has no apex annotation: the annotated-apex rows use its middle frame there."],
    )


EXPERIMENTS = {
    "modalities": modalities,
    "networks": networks,
    "meganet-3class": meganet_3class,
    "meganet-5class": meganet_5class,
    "cross": cross,
    "ablation-modules": ablation_modules,
    "ablation-blocks": ablation_blocks,
    "ablation-attention": ablation_attention,
    "apex": apex_choice,
}


def get_experiment(name: str) -> Experiment:
    """The grid of experiment ``name`` (one of :data:`EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]()
