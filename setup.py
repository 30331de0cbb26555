"""Build script: compiles the Cython kernels, with OpenMP when the compiler supports it.

Set ``EMSTATS_NO_OPENMP=1`` to force a serial build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
    "embedsignature": True,
}


def _compiler_supports_openmp(compiler) -> bool:
    """Try to compile and link a tiny OpenMP program with the configured compiler."""
    if os.environ.get("EMSTATS_NO_OPENMP", "").strip() not in ("", "0"):
        return False
    code = (
        "#include <omp.h>\nint main(void){\n#pragma omp parallel\n{}\n"
        "return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    )
    tmp = tempfile.mkdtemp(prefix="emstats-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write(code)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(
                objs, "probe", output_dir=tmp, extra_postargs=["-fopenmp"]
            )
            subprocess.run([os.path.join(tmp, "probe")], check=True, capture_output=True)
        except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExtOpenMP(build_ext):
    """``build_ext`` that probes for OpenMP and records what it found."""

    def build_extensions(self):
        has_omp = _compiler_supports_openmp(self.compiler)
        if not has_omp:
            warnings.warn(
                "emstats: the C compiler does not support OpenMP (or EMSTATS_NO_OPENMP is set); "
                "building serial kernels. emstats.show_config() will report this.",
                stacklevel=1,
            )
        for ext in self.extensions:
            ext.extra_compile_args = ["-O3", "-fno-math-errno"] + (["-fopenmp"] if has_omp else [])
            ext.extra_link_args = ["-fopenmp"] if has_omp else []
            ext.define_macros = list(ext.define_macros or []) + [
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                ("EMSTATS_HAS_OPENMP", "1" if has_omp else "0"),
            ]
        super().build_extensions()


# every .pyx in emstats/_kernels is one extension module
KERNELS = sorted(
    os.path.splitext(f)[0]
    for f in os.listdir(os.path.join("emstats", "_kernels"))
    if f.endswith(".pyx")
)
extensions = [
    Extension(
        f"emstats._kernels.{name}",
        [os.path.join("emstats", "_kernels", f"{name}.pyx")],
        include_dirs=[np.get_include(), os.path.join("emstats", "_kernels")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, quiet=True),
    cmdclass={"build_ext": BuildExtOpenMP},
)
