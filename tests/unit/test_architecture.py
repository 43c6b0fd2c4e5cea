"""The package's dependency rules, checked on every module's imports (TYPE_CHECKING blocks and
imports inside functions included), so that they stay true as the code grows:

- `core` is pure: only the standard library's computing modules and itself;
- `binance` (the protocol) imports neither side of it: no `venues`, `sim` or `engine`;
- `venues` (the client side) never imports `sim` or `engine`;
- `sim` (the server side) never imports `venues` or `engine`;
- `control` (the HTTP API, its description and the `ctl` client) knows nothing of the engine
  or the venues: the engine implements what the server asks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mm_daemon"

# What the core may import from outside itself: computing, no I/O, no clock, no event loop.
CORE_ALLOWED = frozenset(
    {
        "__future__",
        "bisect",
        "collections",
        "dataclasses",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "math",
        "random",
        "statistics",
        "typing",
    }
)
FORBIDDEN = {
    "binance": ("mm_daemon.venues", "mm_daemon.sim", "mm_daemon.engine", "mm_daemon.config"),
    "venues": ("mm_daemon.sim", "mm_daemon.engine"),
    "sim": ("mm_daemon.venues", "mm_daemon.engine"),
    "control": (
        "mm_daemon.engine",
        "mm_daemon.venues",
        "mm_daemon.sim",
        "mm_daemon.core",
        "mm_daemon.binance",
    ),
}


def imports_of(path: Path) -> list[str]:
    """Every module `path` imports, absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            module = node.module or ""
            names.append(module)
            # `from mm_daemon import x` imports the module mm_daemon.x.
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def test_every_subpackage_the_rules_name_exists() -> None:
    for name in ("core", *FORBIDDEN):
        assert modules(name), name


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_imports_only_itself_and_pure_standard_modules(path: Path) -> None:
    outside = sorted(
        {
            name
            for name in imports_of(path)
            if not name.startswith("mm_daemon.core")
            and name.split(".")[0] not in CORE_ALLOWED
            and name != "mm_daemon"
        }
    )
    assert outside == [], f"{path.relative_to(PACKAGE)} imports {outside}"


@pytest.mark.parametrize(
    ("layer", "path"),
    [(layer, path) for layer in FORBIDDEN for path in modules(layer)],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_layers_import_only_what_the_dependency_rules_allow(layer: str, path: Path) -> None:
    bad = sorted(
        {
            name
            for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])
        }
    )
    assert bad == [], f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_checker_sees_an_import_hidden_under_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from mm_daemon.engine.metrics import Metrics\n"
        "def f():\n"
        "    import asyncio\n"
    )
    assert "mm_daemon.engine.metrics" in imports_of(module)
    assert "asyncio" in imports_of(module)
