"""The package layout as the design states it: no import circle anywhere in ``mer/`` (counting the package
``__init__`` files an import runs), the layers import in one direction, and importing the pipeline loads no heavy
dependency before a stage of its topic runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mer

ROOT = Path(mer.__file__).parent
ENGINE = {
    f"mer.pipeline.{name}"
    for name in (
        "stage", "graph", "runner", "outcomes", "clip_pass", "group_pass", "grouping", "executors", "worker_setup",
        "context", "frames_io", "claim_wait",
    )
}
TOPICS = ("mer.pipeline.face", "mer.pipeline.temporal", "mer.pipeline.flow", "mer.pipeline.ingest")


def module_files() -> dict[str, Path]:
    """Every module of ``mer`` by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported_modules(name: str) -> set[str]:
    """The ``mer`` modules that importing ``name`` may run: each imported module (module level or inside a
    function: a lazy import counts) and the packages above it that are not above ``name`` itself."""
    tree = ast.parse(MODULES[name].read_text())
    skip = _type_checking_lines(tree)
    package = name if _is_package(name) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # a submodule when there is one, else a name of ``source``
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in MODULES else source)
    found = set()
    own = set(_ancestors(name)) | {name}
    for target in targets:
        if target not in MODULES:
            continue
        found.add(target)  # a name taken from a package above this module counts: its __init__ must have run
        found.update(a for a in _ancestors(target) if a not in own and a in MODULES)
    found.discard(name)
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_through_a_package_init():
    graph = {"a.kernel": {"b", "b.kernel"}, "b": {"b.stages"}, "b.stages": {"a.kernel"}, "b.kernel": set()}
    assert find_cycle(graph) == ["a.kernel", "b", "b.stages", "a.kernel"]
    graph["b.stages"] = set()
    assert find_cycle(graph) is None


def test_no_import_circle_anywhere_in_mer():
    assert find_cycle(GRAPH) is None, " → ".join(find_cycle(GRAPH) or [])


def _imports_under(module: str, prefix: str) -> list[str]:
    return sorted(t for t in GRAPH[module] if t == prefix or t.startswith(prefix + "."))


def test_datasets_and_pipeline_do_not_import_each_other():
    for name in MODULES:
        if name.startswith("mer.datasets"):
            assert not _imports_under(name, "mer.pipeline"), name
        if name.startswith("mer.pipeline"):
            assert not _imports_under(name, "mer.datasets"), name


def test_the_engine_imports_no_topic_and_kernels_import_no_stages():
    for name in ENGINE:
        for topic in TOPICS:
            assert not _imports_under(name, topic), (name, topic)
    stage_modules = {n for n in MODULES if n.endswith(".stages") and n.startswith("mer.pipeline.")}
    for name in MODULES:
        if not name.startswith(TOPICS) or name in stage_modules or _is_package(name):
            continue
        direct = {t for t in GRAPH[name] if t in stage_modules}
        assert not direct, (name, direct)


def test_only_the_cli_imports_the_cli():
    for name in MODULES:
        if not name.startswith("mer.cli"):
            assert not _imports_under(name, "mer.cli"), name


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m for m in ('dlib', 'numba', 'torch') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_pipeline_and_its_stages_loads_no_dlib_numba_or_torch():
    assert _loaded_after("import mer.pipeline") == set()
    assert _loaded_after("import mer.pipeline.catalog") == set()
    # ... until a stage of that topic computes: rank pooling loads Numba.
    pooled = (
        "import numpy as np\nfrom mer.pipeline.temporal.rank_pool import rank_pool\n"
        "rank_pool(np.ones((3, 4, 4)), np.ones(3))"
    )
    assert _loaded_after("import mer.pipeline.catalog\n" + pooled) == {"numba"}


def test_the_cli_and_reading_run_files_load_no_torch():
    """``mer-cli --help``, ``store ls`` or ``report`` must not wait for PyTorch; training commands load it."""
    assert _loaded_after("import mer.cli") == set()
    assert _loaded_after("import mer.train.results, mer.report") == set()
    assert _loaded_after("import mer.train.trainer") == {"torch"}


def _unresolved_mer_imports(path: Path) -> list[str]:
    """``from mer.X import Y`` / ``import mer.X`` lines of a script (lazy ones included) that name no module or name."""
    import importlib

    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "mer":
            if node.module not in MODULES:
                missing.append(f"{path.name}:{node.lineno} {node.module}")
                continue
            module = importlib.import_module(node.module)
            missing += [f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names
                        if not hasattr(module, a.name) and f"{node.module}.{a.name}" not in MODULES]
        elif isinstance(node, ast.Import):
            missing += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                        if a.name.split(".")[0] == "mer" and a.name not in MODULES]
    return missing


def test_benchmarks_and_doc_scripts_import_what_exists():
    scripts = sorted((ROOT.parent / "benchmarks").glob("*.py")) + sorted((ROOT.parent / "docs").glob("*.py"))
    assert scripts
    assert [m for path in scripts for m in _unresolved_mer_imports(path)] == []
