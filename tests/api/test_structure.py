"""The package's layering (DESIGN.md): no import cycle anywhere in rnnfast/, lazy imports
included; the core and the NumPy kernels import NumPy only; the NumPy backend and the reference
load without the C extension."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

import rnnfast

PACKAGE = Path(rnnfast.__file__).parent


def imports_of(path: Path, package: str) -> set[str]:
    """Every module of ``package`` (a flat folder of .py and .pyx modules) that the file at
    ``path`` imports, at any depth of its code: imports inside functions close a cycle as
    surely when they run.  ``from . import name`` is the submodule ``name`` when there is one,
    else a name of the package's ``__init__``."""
    modules = {p.stem for p in path.parent.iterdir() if p.suffix in (".py", ".pyx")}

    def named(parts: list[str]) -> str:
        return f"{package}.{parts[0]}" if parts and parts[0] in modules else package

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    found.add(named(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] != package:
                continue
            parts = (node.module or "").split(".")[(0 if node.level else 1) :]
            parts = [p for p in parts if p]
            if parts:  # from .x import y
                found.add(named(parts))
            else:  # from . import x, y
                found |= {named([alias.name]) for alias in node.names}
    this = package if path.stem == "__init__" else f"{package}.{path.stem}"
    return found - {this}


def import_graph(directory: Path, package: str) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(directory.glob("*.py")):
        name = package if path.stem == "__init__" else f"{package}.{path.stem}"
        graph[name] = imports_of(path, package)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as the path that closes it (empty: none)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph(PACKAGE, "rnnfast")) == []


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path):
    """Negative control: a cycle closed by an import inside a function is found."""
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import g\n    return g\n")
    (tmp_path / "c.py").write_text("import numpy\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]


@pytest.mark.parametrize("module, allowed", [
    ("core", {"rnnfast.validation"}),
    ("kernels", set()),
    ("validation", set()),
])  # fmt: skip
def test_the_bottom_layers_import_nothing_of_the_package_above(module, allowed):
    assert imports_of(PACKAGE / f"{module}.py", "rnnfast") <= allowed


@pytest.mark.parametrize("module, allowed", [
    ("inspect", {"rnnfast.core", "rnnfast.stack", "rnnfast.validation"}),
    ("viz", {"rnnfast.inspect", "rnnfast.validation"}),
])  # fmt: skip
def test_inspection_takes_a_model_and_imports_nothing_above_the_stack(module, allowed):
    """inspect and viz read a model through the stack's kernels: never the training loop,
    the checkpoints or the command line that use them."""
    assert imports_of(PACKAGE / f"{module}.py", "rnnfast") <= allowed


def test_the_numpy_backend_and_the_reference_load_without_the_extension(tmp_path):
    """A copy of the package's Python files, no compiled extension: the reference trains and
    samples; the C backend says how to build it."""
    shutil.copytree(PACKAGE, tmp_path / "rnnfast", ignore=shutil.ignore_patterns("*.so", "*.pyd"))
    script = (
        "import sys\n"  # an editable install's finder would supply the extension from elsewhere
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        "import numpy as np, rnnfast, rnnfast.reference as ref\n"
        "m = ref.CharLM(rnnfast.Vocab.from_text('abcde'), hidden_size=4, seed=0)\n"
        "x = np.zeros((3, 2), np.int64)\n"
        "loss, state = m.train_step(x, x, rnnfast.Adam(m))\n"
        "assert np.isfinite(loss) and len(m.sample(4, seed=0)) == 4\n"
        "try:\n"
        "    rnnfast.CharLM(5)\n"
        "except ImportError as e:\n"
        "    print('refused:', e)\n"
    )
    env = subprocess_env()
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "refused: rnnfast's compiled extension is missing" in done.stdout
