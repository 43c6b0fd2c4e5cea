"""Build hook for the compiled modules; everything else is declared in pyproject.toml.

Both are optional: where no C compiler is at hand the package installs without them and the
same work runs in Python (same results, slower). `mm_daemon._levels` reads Binance market-data
frames; `mm_daemon._orderwire` signs order requests.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mm_daemon._levels",
            sources=["mm_daemon/_levels.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "mm_daemon._orderwire",
            sources=["mm_daemon/_orderwire.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
