"""Negative controls that look like real bugs: each is planted, one at a time, in the NumPy
reference or in a copy of the C sources, and the suite's own check for that code must fail.

A plant is one textual change: where (a reference function, or a file under csrc/), the exact
old snippet and its replacement.  Each test first asserts that the old snippet occurs exactly
once, so a refactor that moves the code fails here loudly instead of leaving the control
vacuous; then it applies the change and runs the existing check against it.

Reference plants run the checks in-process on a copy of the function compiled from its edited
source: the C-vs-reference comparisons of tests/kernels/test_recurrent.py over their whole grid
of shapes, and the finite-difference checks of tests/kernels/test_gradcheck.py (which catch a
bug that the C twin might share).  C plants are built into a copy of the tree (marker
``c_plants``, run by .ci/run with ``-m c_plants``): the unplanted copy is built once, and each
plant's copy of that build recompiles only the objects that include the planted file.
"""

import inspect
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import test_gradcheck as gradcheck
import test_recurrent as kernel_checks
from conftest import DTYPES, subprocess_env

import rnnfast.kernels as kernels
import rnnfast.reference as ref

ROOT = Path(__file__).resolve().parents[2]

# (bug, reference function, old snippet, new snippet, the checks that must fail)
REFERENCE_PLANTS = [
    (
        "swapped gates",
        "lstm_forward",
        "i = _sigmoid(a[:, :H])\n        f = _sigmoid(a[:, H : 2 * H])",
        "i = _sigmoid(a[:, H : 2 * H])\n        f = _sigmoid(a[:, :H])",
        ("forward",),
    ),
    (
        "dropped h0 term",
        "lstm_backward",
        "hs_prev = np.concatenate([h0[None], hs[:-1]])",
        "hs_prev = np.concatenate([np.zeros_like(h0)[None], hs[:-1]])",
        ("backward", "finite differences"),
    ),
    (
        "off-by-one in the time loop",
        "lstm_backward",
        "c_prev = cs[t - 1] if t > 0 else c0",
        "c_prev = cs[t - 1] if t > 1 else c0",
        ("backward", "finite differences"),
    ),
    (
        "missing dc carry",
        "lstm_backward",
        "dc = carry_c + dh * o",
        "dc = dh * o",
        ("backward", "finite differences"),
    ),
    (
        "reset gate dropped from n",
        "gru_forward",
        "n = np.tanh(a[:, 2 * H :] + r * rec[:, 2 * H :])",
        "n = np.tanh(a[:, 2 * H :] + rec[:, 2 * H :])",
        ("forward",),
    ),
    (
        "missing direct carry through z",
        "gru_backward",
        "carry = dh * z + dR[t] @ W_h.T",
        "carry = dR[t] @ W_h.T",
        ("backward", "finite differences"),
    ),
    (
        "wrong transpose",
        "rnn_backward",
        "carry = dA[t] @ W_h.T",
        "carry = dA[t] @ W_h",
        ("backward", "finite differences"),
    ),
]


def planted(function_name, old, new):
    """The NumPy kernel ``function_name`` compiled from its source with ``old`` replaced by
    ``new`` (``old`` must occur exactly once), in the kernels module's namespace."""
    source = textwrap.dedent(inspect.getsource(getattr(kernels, function_name)))
    assert source.count(old) == 1, (
        f"the plant's snippet occurs {source.count(old)} times in kernels.{function_name}: "
        f"re-target the plant at the code as it is now:\n{old}"
    )
    namespace = dict(vars(kernels))
    exec(compile(source.replace(old, new), f"<planted {function_name}>", "exec"), namespace)
    return namespace[function_name]


def failures(check, cell):
    """How many cases of the suite's ``check`` fail for ``cell``, and how many ran."""
    if check == "finite differences":
        tests = (
            gradcheck.test_parameter_gradients_match_finite_differences,
            gradcheck.test_initial_state_gradients_match_finite_differences,
        )
        cases = [(test, (cell, layers)) for test in tests for layers in (1, 2)]
    else:
        test = getattr(kernel_checks, f"test_{check}_matches_reference")
        grid = itertools.product(
            [np.dtype(d) for d in DTYPES],
            kernel_checks.SHAPES,
            ["ids", "float"],
            ["zero", "random"],
        )
        cases = [
            (test, (np.random.default_rng(20261129), dtype, cell, shape, inputs, init))
            for dtype, shape, inputs, init in grid
        ]
    failed = 0
    for test, args in cases:
        try:
            test(*args)
        except AssertionError:
            failed += 1
    return failed, len(cases)


def plant(monkeypatch, function_name, function):
    """Replace the NumPy kernel where it is defined and where the reference re-exports it."""
    for module in (kernels, ref):
        monkeypatch.setattr(module, function_name, function)


@pytest.mark.parametrize(
    "function_name, old, new, check",
    [
        pytest.param(fn, old, new, check, id=f"{bug}-{check}")
        for bug, fn, old, new, checks in REFERENCE_PLANTS
        for check in checks
    ],
)
def test_a_reference_plant_fails_the_check(monkeypatch, function_name, old, new, check):
    plant(monkeypatch, function_name, planted(function_name, old, new))
    failed, cases = failures(check, function_name.split("_")[0])
    assert failed > 0, f"the plant passed all {cases} cases of the {check} check"


@pytest.mark.parametrize("function_name", sorted({plant[1] for plant in REFERENCE_PLANTS}))
def test_the_unplanted_copy_passes(monkeypatch, function_name):
    """The compiled copy itself changes nothing: an identity rewrite passes every check."""
    snippet = next(p[2] for p in REFERENCE_PLANTS if p[1] == function_name)
    plant(monkeypatch, function_name, planted(function_name, snippet, snippet))
    cell = function_name.split("_")[0]
    for check in ("forward", "backward", "finite differences"):
        assert failures(check, cell)[0] == 0, check


# ---- plants in a copy of the C sources --------------------------------------------------------

# Written against the one recurrent driver's chunked GEMMs (recurrent_tmpl.h) and the packed
# per-step kernel (pgemm_tmpl.h, forced on every ISA by the kernel tests' paths): re-target the
# snippets when that code moves.
# (bug, file, old snippet, new snippet)
C_PLANTS = [
    (
        "forward projection chunk one step short",
        "csrc/recurrent_tmpl.h",
        "const int steps = T - t0 < chunk ? T - t0 : chunk;",
        "const int steps = T - t0 < chunk ? T - t0 : chunk - 1;",
    ),
    (
        "weight-gradient chunks overlap by one step",
        "csrc/recurrent_tmpl.h",
        "T < (c + 1) * chunk ? T : (c + 1) * chunk, j0, n);",
        "T < (c + 1) * chunk + 1 ? T : (c + 1) * chunk + 1, j0, n);",
    ),
    (
        "GRU's b_hn dropped from the n gate",
        "csrc/cell_tmpl.h",
        "const real rn = rec_n[j] + b_hn[j];",
        "const real rn = rec_n[j] + (real)0 * b_hn[j];",  # b_hn still read: -Werror builds
    ),
    (
        "packed panel drops its last partial column",
        "csrc/pgemm_tmpl.h",
        "const int w = N - j0 < PG_NR ? N - j0 : PG_NR;\n        const real *restrict panel",
        "const int w = N - j0 < PG_NR ? N - j0 - 1 : PG_NR;\n        const real *restrict panel",
    ),
    (
        "LSTM backward ignores the dropout mask",
        "csrc/cell_tmpl.h",
        "const real dh = (dropout ? dH[j] * mask[j] : dH[j]) + carry_h[j];",
        "const real dh = (dropout ? dH[j] + (real)0 * mask[j] : dH[j]) + carry_h[j];",
    ),
]
# Chunks of 1 KiB and no row floor: 1 or 2 steps a chunk at the grid's shapes, so every LSTM
# comparison crosses chunk boundaries (the default 512 KiB holds the whole sequence at every
# shape of the grid, and so does the default floor of 512 rows).
SMALL_CHUNKS = "-DRF_CHUNK_BYTES=1024 -DRF_CHUNK_ROWS=1"
# -x: one failure proves a plant is caught; the thousands more took minutes to report.
KERNEL_CHECKS = ["tests/kernels/test_recurrent.py", "-k", "matches_reference", "-x"]


def built_copy(tmp_path, plant=None, base=None):
    """A copy of the source tree with ``plant`` (file, old, new) applied, built in place with
    small LSTM chunks; the already cythonized bridge is reused when the tree has one.  From a
    copy of the built tree ``base`` (objects and times kept), setup.py's build_ext recompiles
    only the objects that include the planted file."""
    copy = tmp_path / "tree"
    if base is not None:
        shutil.copytree(base, copy, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        if not (ROOT / "csrc").is_dir() or not (ROOT / "setup.py").is_file():
            pytest.skip(f"{ROOT} is not a source checkout")
        for name in ("csrc", "rnnfast", "tests"):
            shutil.copytree(
                ROOT / name, copy / name, ignore=shutil.ignore_patterns("*.so", "build")
            )
        for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
            shutil.copy2(ROOT / name, copy / name)
    if plant is not None:
        path, old, new = plant
        source = (copy / path).read_text()
        assert source.count(old) == 1, (
            f"the plant's snippet occurs {source.count(old)} times in {path}: re-target it:\n{old}"
        )
        (copy / path).write_text(source.replace(old, new))
    env = {**os.environ, "CFLAGS": f"{os.environ.get('CFLAGS', '')} {SMALL_CHUNKS}"}
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"the copy did not build:\n{built.stderr[-3000:]}"
    return copy


@pytest.fixture(scope="module")
def unplanted_copy(tmp_path_factory):
    """The unplanted small-chunk build, once: every plant starts from a copy of it."""
    return built_copy(tmp_path_factory.mktemp("unplanted"))


@pytest.fixture(scope="module")
def planted_copies(tmp_path_factory, unplanted_copy):
    """{bug: the future of its built copy}: each plant recompiles one object on one core, so two
    build at once, from the start (the unplanted copy's checks meanwhile write only bytecode)."""
    pool = ThreadPoolExecutor(2)
    yield {
        bug: pool.submit(
            built_copy, tmp_path_factory.mktemp("plant"), (path, old, new), unplanted_copy
        )
        for bug, path, old, new in C_PLANTS
    }
    pool.shutdown(cancel_futures=True)


def run_kernel_checks(copy):
    """The kernel comparison tests against the copy's extension: (exit code, output tail)."""
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env["PYTHONPATH"]])
    where = subprocess.run(
        [sys.executable, "-c", "import rnnfast._kernels as k; print(k.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(copy), f"the checks would import {where}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_CHECKS],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout[-3000:]


@pytest.mark.c_plants
def test_the_unplanted_small_chunk_build_passes(unplanted_copy, planted_copies):
    code, output = run_kernel_checks(unplanted_copy)  # while the first plants build
    assert code == 0, output


@pytest.mark.c_plants
@pytest.mark.parametrize("bug", [bug for bug, *_ in C_PLANTS])
def test_a_c_plant_fails_the_kernel_checks(planted_copies, bug):
    code, output = run_kernel_checks(planted_copies[bug].result())
    assert code == 1 and " failed" in output, f"exit code {code}:\n{output}"
