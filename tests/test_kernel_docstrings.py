"""Every public kernel function of the temporal and flow topics (and the image kernels they share) carries a
numpydoc docstring: a ``Parameters`` section naming each parameter of its signature, in order, as ``name : type``
(``**overrides`` untyped), a
``Returns`` section, and a ``Raises`` section naming every exception the function raises itself.

The files are parsed, not imported, so the check loads neither torch nor Numba."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import mer

PIPELINE = Path(mer.__file__).parent / "pipeline"
KERNEL_FILES = [
    "image_ops.py",
    "temporal/arp.py",
    "temporal/rank_pool.py",
    "temporal/rank_pool_numba.py",
    "temporal/single_image.py",
    "temporal/figure.py",
    "flow/optical_flow.py",
    "flow/codec.py",
    "flow/fields.py",
    "flow/image.py",
    "flow/strain.py",
    "flow/roi.py",
    "flow/tvl1_params.py",
    "flow/tvl1_torch.py",
    "flow/median_net.py",
    "temporal/apex.py",
    "face/align.py",
    "face/detect.py",
    "face/landmarks.py",
    "face/smoothing.py",
    "face/equalize.py",
    "face/draw.py",
    "face/models.py",
]
_UNDERLINE = re.compile(r"^-{3,}$")


def sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections of a docstring (a title line underlined by dashes) → their lines."""
    lines = doc.splitlines()
    out: dict[str, list[str]] = {}
    current = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1].strip()) and line.strip():
            current = line.strip()
            out[current] = []
        elif current is not None and not _UNDERLINE.match(line.strip()):
            out[current].append(line)
    return out


def documented_names(lines: list[str]) -> list[str]:
    """Names of the entries of a Parameters section: unindented ``name : type`` lines (``a, b : type`` lists
    two)."""
    names = []
    for line in lines:
        if line and not line[0].isspace() and " : " in line:
            names += [n.strip().lstrip("*") for n in line.split(" : ")[0].split(",")]
        elif line and not line[0].isspace():
            names.append(line.strip().lstrip("*"))
    return names


def raised_here(func: ast.FunctionDef) -> set[str]:
    """Exception classes the function raises by name in its own body (not in nested functions)."""
    found = set()
    stack = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id[0].isupper():
                found.add(exc.id)
        stack.extend(ast.iter_child_nodes(node))
    return found


def signature_names(func: ast.FunctionDef) -> list[str]:
    a = func.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return [n for n in names if n not in ("self", "cls")]


def problems(func: ast.FunctionDef) -> list[str]:
    doc = ast.get_docstring(func)
    if not doc:
        return ["no docstring"]
    found = sections(doc)
    issues = []
    params = signature_names(func)
    if params:
        if "Parameters" not in found:
            issues.append("no Parameters section")
        else:
            documented = documented_names(found["Parameters"])
            if documented != params:
                issues.append(f"Parameters {documented} != signature {params}")
            for line in found["Parameters"]:
                if line and not line[0].isspace() and " : " not in line and not line.startswith("*"):
                    issues.append(f"parameter without a type: {line.strip()!r}")
    if not found.get("Returns") or not any(line.strip() for line in found["Returns"]):
        issues.append("no Returns section")
    missing = sorted(e for e in raised_here(func) if e not in "\n".join(found.get("Raises", [])))
    if missing:
        issues.append(f"Raises does not name {missing}")
    return issues


def public_functions(relpath: str) -> list[ast.FunctionDef]:
    tree = ast.parse((PIPELINE / relpath).read_text())
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def _parse_one(src: str) -> ast.FunctionDef:
    return ast.parse(src).body[0]


GOOD = '''
def f(a, b=1):
    """Sum.

    Parameters
    ----------
    a : int
        First, in px.
    b : int, default 1
        Second.

    Returns
    -------
    int
        ``a + b``.

    Raises
    ------
    ValueError
        If ``a < 0``.
    """
    if a < 0:
        raise ValueError("a")
    return a + b
'''


def test_the_checker_accepts_a_numpydoc_docstring_and_names_what_is_missing():
    assert problems(_parse_one(GOOD)) == []
    assert problems(_parse_one(GOOD.replace("    b : int, default 1\n        Second.\n", ""))) == [
        "Parameters ['a'] != signature ['a', 'b']"
    ]
    assert problems(_parse_one(GOOD.replace("a : int", "a"))) == ["parameter without a type: 'a'"]
    assert problems(_parse_one(GOOD.replace("Returns\n    -------", "Yields\n    ------"))) == ["no Returns section"]
    assert problems(_parse_one(GOOD.replace("ValueError\n        If", "TypeError\n        If"))) == [
        "Raises does not name ['ValueError']"
    ]
    assert problems(_parse_one("def g(x):\n    '''One line, x : int.'''\n")) == [
        "no Parameters section",
        "no Returns section",
    ]


@pytest.mark.parametrize("relpath", KERNEL_FILES)
def test_every_public_kernel_function_has_a_numpydoc_docstring(relpath):
    functions = public_functions(relpath)
    assert functions or relpath == "flow/tvl1_params.py", f"{relpath}: no public function found"
    bad = {f.name: p for f in functions if (p := problems(f))}
    assert not bad, f"{relpath}: {bad}"
