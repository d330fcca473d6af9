"""The built-in demo: synthetic data → preprocessing → MESTI, dynamic image, apex frame → MEGANet → a table.

Sizes are chosen so that the whole run fits in about six or seven minutes on a 2-core CPU; the output says which.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import mer.pipeline.catalog  # noqa: F401  (registers the built-in stages)
from mer.cli.console import console
from mer.cli.run_view import print_report, run_with_progress
from mer.datasets.manifest_store import write_dataset_manifest
from mer.pipeline.graph import build_plan
from mer.store import FeatureStore, open_store


@dataclass(frozen=True)
class DemoSizes:
    """What the demo computes: small enough for a laptop CPU, large enough for LOSO to mean something."""

    subjects: int = 8
    clips_per_subject: int = 6
    classes: int = 3
    frame_size: tuple[int, int] = (640, 480)
    image_size: int = 64
    epochs: int = 30
    workers: int = 2
    seed: int = 0


def _synthetic_dataset(data_dir: Path, sizes: DemoSizes | FaceSleuthDemoSizes, what: str) -> None:
    """Step 1 of both demos: write the synthetic dataset unless it is already there."""
    from mer.synthetic.clips import generate_synthetic

    if (data_dir / "annotations.csv").exists():
        console.print("[bold]1. synthetic dataset[/bold]: already there")
        return
    console.print(f"[bold]1. synthetic dataset[/bold] ({what})")
    generate_synthetic(
        data_dir,
        subjects=sizes.subjects,
        clips_per_subject=sizes.clips_per_subject,
        classes=sizes.classes,
        seed=sizes.seed,
        frame_size=sizes.frame_size,
    )


def _synthetic_store(store_dir: Path, data_dir: Path, classes: int) -> FeatureStore:
    """The demos' store with the synthetic clips table (relabelled to ``classes``) as dataset ``synth``."""
    from mer.datasets import load

    result = load("folder", data_dir, labels=f"{classes}class", dataset_name="synth")
    store = open_store(str(store_dir), "a")
    write_dataset_manifest(store, "synth", result.manifest, data_dir, result.adapter, result.label_set.to_dict())
    return store


def run_demo(out: Path, sizes: DemoSizes = DemoSizes(), fresh: bool = False) -> Path:
    """Run the whole chain into ``out`` (data/, store/, runs/) and return the Markdown report's path."""
    from mer.report.tables import compare_runs, to_markdown, to_text
    from mer.train.experiment import run_experiment
    from mer.train.store_inputs import load_training_data
    from mer.train.trainer import TrainConfig

    start = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    data_dir, store_dir, runs_dir = out / "data", out / "store", out / "runs"
    console.rule("mer demo")
    console.print(
        f"sizes: {sizes.subjects} subjects × {sizes.clips_per_subject} clips, {sizes.classes} classes, "
        f"{sizes.frame_size[0]}×{sizes.frame_size[1]} frames; network inputs {sizes.image_size} px "
        f"(the paper uses 224; shrunk so the demo fits in ~6-7 minutes on 2 CPU cores), "
        f"{sizes.epochs} epochs, seed {sizes.seed}"
    )

    _synthetic_dataset(data_dir, sizes, "real face photos, AU-shaped motions")

    console.print(
        "[bold]2. preprocess[/bold]: ingest → detect → landmarks → align → equalize → MESTI, dynamic image, apex frame"
    )
    store = _synthetic_store(store_dir, data_dir, sizes.classes)
    image = {"size": sizes.image_size}
    plan = build_plan(
        store,
        "synth",
        ["mesti", "dynamic", "apex-frame"],
        {"apex": {"mode": "annotated"}, "mesti": image, "dynamic": image, "apex-frame": image},
    )
    report = run_with_progress(store, "synth", plan, sizes.workers, False, "preprocess synth")
    print_report(report, plan)

    console.print("[bold]3. train[/bold]: MEGANet under leave-one-subject-out: MESTI, dynamic image, apex frame")
    config = TrainConfig(epochs=sizes.epochs, seed=sizes.seed, batch_size=16, lr=1e-3)
    run_dirs = []
    keys = {p.stage.name: p.key for p in plan}  # the entries just computed (an older version's may sit beside them)
    for input_name in ("mesti", "dynamic", "apex-frame"):
        data = load_training_data(store, "synth", input_name, keys[input_name])
        run_dir = runs_dir / f"{input_name}-meganet"
        res = run_experiment(
            data.X,
            data.meta,
            "loso",
            "meganet",
            None,
            config,
            run_dir,
            class_names=data.class_names,
            provenance=data.provenance,
            input_name=input_name,
        )
        m = res.metrics
        console.print(f"  {input_name:<10} UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  ACC {m['acc']:.3f}")
        run_dirs.append(run_dir)

    console.print("[bold]4. report[/bold]")
    from mer.report.figures import save_run_figures

    table = compare_runs(run_dirs)
    for run_dir in run_dirs:
        save_run_figures(run_dir)
    report_path = runs_dir / "report.md"
    report_path.write_text("# mer demo results\n\n" + to_markdown(table) + "\n")
    console.print(to_text(table))
    console.print(f"chance level for {sizes.classes} classes: UAR {1 / sizes.classes:.3f}")
    console.print(
        f"done in {time.perf_counter() - start:.0f} s. Results: {report_path}, runs in {runs_dir}, "
        f"store in {store_dir} (mer-cli store ls {store_dir})"
    )
    return report_path


@dataclass(frozen=True)
class FaceSleuthDemoSizes:
    """The FaceSleuth demo: a narrow FaceSleuth (same layout, fewer channels, a 3-stage Swin) at 64 px."""

    subjects: int = 6
    clips_per_subject: int = 6
    classes: int = 3
    frame_size: tuple[int, int] = (320, 240)
    image_size: int = 64
    epochs: int = 25
    workers: int = 2
    seed: int = 0


# 64 px: motion 64 -> 32 -> 32/16/8/4, Swin patch 4 -> 16/8/4 (window 4), both 64 channels at 4x4.
DEMO_FACESLEUTH = dict(
    widths=(16, 16, 32, 64), stem_channels=16, fpf_embed=16, fpf_depths=(1, 1, 2), fpf_heads=(1, 2, 4), window=4,
    hidden=(64, 32), drop_path=0.0,
)


def run_facesleuth_demo(out: Path, sizes: FaceSleuthDemoSizes = FaceSleuthDemoSizes(), fresh: bool = False) -> Path:
    """Synthetic data → aligned faces → raw onset/apex frames → FaceSleuth (SOA, FPF; with and without AUs)
    under LOSO with the public recipe (fixed epochs) → a table and the θ curves."""
    from mer.report.angle_figures import plot_angles
    from mer.report.figures import save_run_figures
    from mer.report.tables import compare_runs, to_markdown, to_text
    from mer.train.experiment import run_experiment
    from mer.train.recipes import get_recipe
    from mer.train.store_inputs import load_training_inputs

    start = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    data_dir, store_dir, runs_dir = out / "data", out / "store", out / "runs"
    console.rule("mer FaceSleuth demo")
    console.print(
        f"sizes: {sizes.subjects} subjects × {sizes.clips_per_subject} clips, {sizes.classes} classes, "
        f"{sizes.frame_size[0]}×{sizes.frame_size[1]} frames; onset/apex at {sizes.image_size} px and a narrow "
        f"FaceSleuth (the paper: 224 px, 76 M parameters), {sizes.epochs} epochs, seed {sizes.seed}"
    )
    _synthetic_dataset(data_dir, sizes, "real face photos, AU-shaped motions, FACS codings")
    console.print("[bold]2. preprocess[/bold]: ingest → detect → landmarks → align → raw onset and apex frames")
    store = _synthetic_store(store_dir, data_dir, sizes.classes)
    raw = {"size": sizes.image_size}
    overrides = {"apex": {"mode": "annotated"}, "onset-raw": raw, "apex-frame-raw": raw}
    plan = build_plan(store, "synth", ["onset-raw", "apex-frame-raw"], overrides)
    report = run_with_progress(store, "synth", plan, sizes.workers, False, "preprocess synth")
    print_report(report, plan)

    console.print("[bold]3. train[/bold]: FaceSleuth under LOSO, images only and images + AU codings")
    recipe = "facesleuth-paper"
    config = get_recipe(recipe).config(epochs=sizes.epochs, batch_size=8, seed=sizes.seed, device="cpu")
    run_dirs = []
    keys = {p.stage.name: p.key for p in plan}  # the entries just computed (an older version's may sit beside them)
    images = {"onset": f"onset-raw@{keys['onset-raw']}", "apex": f"apex-frame-raw@{keys['apex-frame-raw']}"}
    for label, au in (("images", False), ("images+AU", True)):
        inputs = images | ({"au": "manifest:au_vector"} if au else {})
        data = load_training_inputs(store, "synth", inputs)
        run_dir = runs_dir / f"facesleuth-{'au' if au else 'noau'}"
        res = run_experiment(
            data.inputs, data.meta, "loso", "facesleuth", DEMO_FACESLEUTH | {"au": au}, config, run_dir,
            class_names=data.class_names, provenance=data.provenance, input_name=data.provenance["input"],
            recipe=recipe,
        )
        m = res.metrics
        thetas = res.history[res.history["epoch"] == res.history["epoch"].max()].filter(like="theta_").mean()
        angles = ", ".join(f"{v:.1f}°" for v in thetas)
        console.print(f"  {label:<10} UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  ACC {m['acc']:.3f}  θ {angles}")
        run_dirs.append(run_dir)

    console.print("[bold]4. report[/bold]")
    table = compare_runs(run_dirs)
    for run_dir in run_dirs:
        save_run_figures(run_dir)
        plot_angles(run_dir)
    report_path = runs_dir / "report.md"
    report_path.write_text("# mer FaceSleuth demo results\n\n" + to_markdown(table) + "\n")
    console.print(to_text(table))
    console.print(
        f"chance level for {sizes.classes} classes: UAR {1 / sizes.classes:.3f}. The synthetic AU codings name "
        "the class's motion exactly, so images+AU is an upper bound, not a fair comparison."
    )
    console.print(f"done in {time.perf_counter() - start:.0f} s. Results: {report_path} (angles.png per run)")
    return report_path
