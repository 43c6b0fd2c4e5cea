"""Reading the checked-in Grafana dashboards: their panels, queries and variables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import DEPLOY

DASHBOARDS_DIR = DEPLOY / "grafana" / "dashboards"
ALL = "$__all"  # Grafana's "All" option; the dashboards' variables send ".*" for it
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>[a-zA-Z_]\w*)\)$")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str
    row: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    selector: str
    label: str


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, object]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for panel in dashboard.get("panels", []):  # type: ignore[attr-defined]
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def queries(path: Path) -> list[PanelQuery]:
    """Every panel query, with the title of the row the panel sits in."""
    dashboard = load(path)
    found: list[PanelQuery] = []
    row = ""
    for panel in panels(dashboard):
        if panel["type"] == "row":
            row = str(panel["title"])
            continue
        found.extend(
            PanelQuery(
                str(dashboard["uid"]), str(panel["title"]), target["refId"], target["expr"], row
            )
            for target in panel.get("targets", [])  # type: ignore[attr-defined]
        )
    return found


def variables(path: Path) -> list[Variable]:
    dashboard = load(path)
    found: list[Variable] = []
    for var in dashboard["templating"]["list"]:  # type: ignore[index]
        match = _LABEL_VALUES.match(var["query"])
        assert match, f"unsupported variable query {var['query']!r}"
        found.append(Variable(var["name"], match["selector"], match["label"]))
    return found


def escape_regex(value: str) -> str:
    """A label value as a regex inside a PromQL string, as Grafana escapes multi-values."""
    return re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", value)


def substitute(expr: str, values: dict[str, list[str]], builtins: dict[str, str]) -> str:
    """Replace $builtins and $variables (multi-value: an alternation, as Grafana sends it)."""
    for name, value in builtins.items():
        expr = expr.replace(f"${name}", value)
    for name in sorted(values, key=len, reverse=True):
        if values[name] == [ALL]:
            expr = expr.replace(f"${name}", ".*")
            continue
        joined = "|".join(escape_regex(v) for v in values[name])
        expr = expr.replace(f"${name}", f"({joined})" if len(values[name]) > 1 else joined)
    return expr
