"""Build hook for the one compiled module; everything else is declared in pyproject.toml.

`mm_daemon._levels` is optional: where no C compiler is at hand the package installs without it
and the market-data path runs its pure-Python loop (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mm_daemon._levels",
            sources=["mm_daemon/_levels.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
