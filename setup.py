"""Build of the C extension: plain C99 kernels from csrc/ behind the Cython bridge.

RNNFAST_NATIVE=1 compiles for the host's vector width (-march=native); the default build is
portable, with AVX2 and AVX-512 variants of the elementwise loops next to the baseline, picked at
first use from the CPU (csrc/paths.h) on GCC for x86-64 (RNNFAST_NO_CLONES=1 leaves them out).
The kernels' threads are OpenMP's (-fopenmp, libgomp): the recurrent drivers, the sampler and the
blocked loops (csrc/omp_blocks.h); RNNFAST_OPENMP=0 builds without it (the same blocks then run in
order, with the same results).
RNNFAST_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer (run Python with
LD_PRELOAD=$(gcc -print-file-name=libasan.so); see the README), RNNFAST_TSAN=1 with
ThreadSanitizer (LD_PRELOAD=$(gcc -print-file-name=libtsan.so); csrc/threads.h says how the
uninstrumented OpenMP runtime is annotated).  Never fast-math flags: the comparison with the NumPy
reference depends on IEEE behaviour.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.modified import newer_group

# -fno-math-errno and -fno-trapping-math change no computed value (no reassociation, NaN and
# signed zeros kept; they are clang's defaults): they let GCC vectorize loops with sqrt and
# branch-free selects, which errno and FP-exception flags would otherwise keep scalar.
# -ffp-contract=off: no fused multiply-add where the source has none, so the ISA variants give the
# same bits (GCC's ISO C mode implies it; clang's default would contract).
compile_args = [
    "-O3",
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
]
link_args = []
if os.environ.get("RNNFAST_OPENMP") != "0":
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
if os.environ.get("RNNFAST_NATIVE") == "1":
    compile_args.append("-march=native")
if os.environ.get("RNNFAST_SANITIZE") == "1":
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    compile_args += [*sanitize, "-fno-omit-frame-pointer", "-g"]
    link_args += sanitize
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if os.environ.get("RNNFAST_TSAN") == "1":
    compile_args += ["-fsanitize=thread", "-fno-omit-frame-pointer", "-g"]
    link_args.append("-fsanitize=thread")
    macros.append(("RNNFAST_TSAN", "1"))
if os.environ.get("RNNFAST_NO_CLONES") == "1":  # the baseline variant alone
    macros.append(("RNNFAST_NO_CLONES", "1"))

kernels = Extension(
    "rnnfast._kernels",
    sources=["rnnfast/_kernels.pyx", *sorted(glob("csrc/*.c"))],
    include_dirs=["csrc", numpy.get_include()],
    depends=sorted(glob("csrc/*.h")),
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=macros,
)


class BuildExt(build_ext):
    """Compiles -j objects at once (default: every core) and skips one whose command is unchanged
    and that is newer than every file gcc's -MMD listed for it: setuptools recompiles them all,
    one at a time, when any file is newer, and a C plant (tests/test_negative_controls.py) changes
    one header."""

    def build_extension(self, ext):
        self.compiler.compile = self.compile_objects
        super().build_extension(ext)

    def compile_objects(
        self,
        sources,
        output_dir=None,
        macros=None,
        include_dirs=None,
        debug=False,
        extra_preargs=None,
        extra_postargs=None,
        depends=None,
    ):
        cc = self.compiler
        macros, objects, extra_postargs, pp_opts, build = cc._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs
        )
        cc_args = cc._get_cc_args(pp_opts, debug, extra_preargs)

        def compile_if_stale(obj):
            src, src_ext = build[obj]
            command = "\n".join([*cc.compiler_so, *cc_args, src, *extra_postargs])
            stamp, deps = Path(obj).with_suffix(".cmd"), Path(obj).with_suffix(".d")
            if not cc.force and stamp.is_file() and deps.is_file():
                listed = deps.read_text().replace("\\\n", " ").split(":", 1)[1].split()
                if stamp.read_text() == command and not newer_group(listed, obj, missing="newer"):
                    return
            stamp.unlink(missing_ok=True)
            cc._compile(obj, src, src_ext, cc_args, [*extra_postargs, "-MMD"], pp_opts)
            stamp.write_text(command)

        jobs = os.cpu_count() if self.parallel is None or self.parallel is True else self.parallel
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(compile_if_stale, objects))
        return objects


setup(ext_modules=cythonize([kernels], language_level=3), cmdclass={"build_ext": BuildExt})
