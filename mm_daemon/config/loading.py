"""Reading a config: YAML, MMD_* environment overrides, secret files, and every problem as one
`path.to.field: what is wrong` line (`ConfigError`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mm_daemon.config.root import Config

ENV_PREFIX = "MMD_"
SECRET_FIELDS = ("api_key", "api_secret")
CONTROL_TOKEN_ENV = "MMD_CONTROL__TOKEN"  # noqa: S105  the variable's name, not a token


class ConfigError(Exception):
    """A config the user must fix; `problems` holds one `path.to.field: what is wrong` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "config"


class _YamlLoader(yaml.SafeLoader):
    """YAML with only `true` and `false` as booleans (YAML 1.2's rule).

    PyYAML follows YAML 1.1, where `off`, `on`, `yes` and `no` are booleans too: `hedging.mode:
    off` would arrive as False and be refused as "not one of off, threshold...". Here they stay
    text; a boolean field still accepts them as pydantic reads them.
    """


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506  a SafeLoader subclass


def _parse_env_value(raw: str) -> Any:
    try:
        return _yaml_load(raw)
    except yaml.YAMLError:
        return raw


ENV_OUTSIDE_CONFIG = frozenset(
    {
        "MMD_DATA_DIR",  # the recorded captures' folder
        "MMD_CONFIRM_MAINNET",  # the second key to live orders on mainnet
        "MMD_CONTROL_URL",  # mm-daemon ctl: the daemon to talk to
        "MMD_IMAGE",  # compose: the image to run
        "MMD_METRICS_HOST_PORT",  # compose: published ports
        "MMD_PROMETHEUS_HOST_PORT",
        "MMD_GRAFANA_HOST_PORT",
    }
)
"""MMD_* variables the project reads outside the config; any other MMD_* must name a field."""


def _env_overrides(environ: Mapping[str, str]) -> tuple[list[tuple[list[str], str]], list[str]]:
    """(path, raw value) of every MMD_* config override, and one problem line per MMD_*
    variable that names no config section (a misspelt section would otherwise do nothing)."""
    overrides = []
    problems = []
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key in ENV_OUTSIDE_CONFIG:
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if path and path[0] in Config.model_fields:
            overrides.append((path, value))
        else:
            sections = ", ".join(sorted(Config.model_fields))
            problems.append(
                f"{key}: names no config section (MMD_<SECTION>__<FIELD>, sections: {sections}; "
                f"other MMD_ variables read: {', '.join(sorted(ENV_OUTSIDE_CONFIG))})"
            )
    return overrides, problems


def env_key(name: str) -> str:
    """How a venue's name appears in an environment variable: sim-spot -> sim_spot."""
    return re.sub(r"[^a-z0-9]", "_", name.lower())


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at `path`; a part names a venue by its environment form, a market by its
    index (MMD_MARKETS__0__QUOTING__SPREAD_BPS)."""
    node: Any = data
    for depth, raw_part in enumerate(path):
        part = raw_part
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([f"{'.'.join(path)}: no such entry to override ({part})"])
            if last:
                node[int(part)] = value
                return
            child = node[int(part)]
            if not isinstance(child, dict):
                child = node[int(part)] = {}
            else:
                child = node[int(part)] = dict(child)
            node = child
            continue
        if depth == 1 and path[0] == "venues":
            part = next((name for name in node if env_key(str(name)) == part), part)
        if last:
            node[part] = value
            return
        child = node.get(part)
        if isinstance(child, list):
            node[part] = child = list(child)
        elif isinstance(child, dict):
            node[part] = child = dict(child)
        else:
            node[part] = child = {}
        node = child


_OLD_VENUE_ROLES = ("maker", "hedge")


def _refuse_old_shape(data: Mapping[str, Any]) -> list[str]:
    """A config written for one maker and one hedge venue (`venues.maker`, `venues.hedge` with
    a symbol each): one line per field saying where it moved."""
    venues = data.get("venues")
    if not isinstance(venues, Mapping):
        return []
    old = {
        role: venue
        for role, venue in venues.items()
        if role in _OLD_VENUE_ROLES and isinstance(venue, Mapping) and "symbol" in venue
    }
    if not old:
        return []
    problems = []
    for role, venue in old.items():
        name = str(venue.get("name") or role)
        market = "markets[0]" if role == "maker" else "markets[0].hedge"
        for field in venue:
            where = f"venues.{role}.{field}"
            if field == "symbol":
                problems.append(
                    f"{where}: moved to {market}.symbol, with {market}.venue: {name} "
                    "(a market is a symbol on a named venue)"
                )
            elif field == "name":
                problems.append(
                    f"{where}: a venue is now named by its key: venues.{name}: "
                    "{exchange: ..., endpoint: ...}"
                )
            elif field == "hedge_ratio":
                problems.append(f"{where}: moved to hedging.ratio (the hedge's units per unit)")
            else:
                problems.append(f"{where}: moved to venues.{name}.{field}")
    return problems


_REPLACED_VENUE_KEYS = ("rate_limit_orders_per_second", "rate_limit_burst_orders")


def _refuse_replaced_venue_keys(data: Mapping[str, Any]) -> list[str]:
    """The token-bucket keys a venue had before its order budget: one line each, saying what
    replaced them."""
    venues = data.get("venues")
    if not isinstance(venues, Mapping):
        return []
    return [
        f"venues.{name}.{key}: replaced by venues.{name}.order_budget (the venue's own rate "
        "limits, read from the venue; order_budget.rate_limits sets them by hand)"
        for name, venue in venues.items()
        if isinstance(venue, Mapping)
        for key in _REPLACED_VENUE_KEYS
        if key in venue
    ]


def _refuse_replaced_sim_keys(data: Mapping[str, Any]) -> list[str]:
    sim = data.get("sim")
    if isinstance(sim, Mapping) and "max_orders_per_10_seconds" in sim:
        return [
            "sim.max_orders_per_10_seconds: replaced by sim.limits (Binance's limits, enforced "
            "by default; sim.limits.spot_orders_per_10_seconds sets this one)"
        ]
    return []


def _refuse_yaml_secrets(data: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    control = data.get("control")
    if isinstance(control, Mapping) and "token" in control:
        problems.append(
            "control.token: secrets are not accepted in the YAML file; set the environment "
            f"variable {CONTROL_TOKEN_ENV} or name a file in control.token_file"
        )
    venues = data.get("venues")
    if isinstance(venues, Mapping):
        for name, venue in venues.items():
            if not isinstance(venue, Mapping):
                continue
            for field in SECRET_FIELDS:
                if field in venue:
                    env = f"{ENV_PREFIX}VENUES__{env_key(str(name)).upper()}__{field.upper()}"
                    problems.append(
                        f"venues.{name}.{field}: secrets are not accepted in the YAML file; "
                        f"set the environment variable {env} or name a file in "
                        f"venues.{name}.{field}_file"
                    )
    return problems


def _read_secret_files(data: dict[str, Any], base_dir: Path) -> list[str]:
    problems: list[str] = []
    control = data.get("control")
    if isinstance(control, dict) and control.get("token_file") and "token" not in control:
        path = Path(str(control["token_file"]))
        if not path.is_absolute():
            path = base_dir / path
        try:
            control["token"] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"control.token_file: cannot read {path}: {exc.strerror}")
    venues = data.get("venues")
    if not isinstance(venues, dict):
        return problems
    for role, venue in venues.items():
        if not isinstance(venue, dict):
            continue
        for field in SECRET_FIELDS:
            file_value = venue.get(f"{field}_file")
            if not file_value or field in venue:  # the environment wins over a file
                continue
            path = Path(str(file_value))
            if not path.is_absolute():
                path = base_dir / path
            try:
                venue[field] = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"venues.{role}.{field}_file: cannot read {path}: {exc.strerror}")
    return problems


def parse_config(
    data: Any, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate already-parsed YAML data, applying environment overrides and secret files."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["config: the file must hold a mapping of sections"])
    problems = (
        _refuse_old_shape(data)
        or _refuse_replaced_venue_keys(data)
        or _refuse_replaced_sim_keys(data)
        or _refuse_yaml_secrets(data)
    )
    if problems:
        raise ConfigError(problems)
    data = dict(data)
    data.pop("$schema", None)
    overrides, problems = _env_overrides(os.environ if environ is None else environ)
    if problems:
        raise ConfigError(problems)
    for path, raw in overrides:
        is_secret = path[-1] in SECRET_FIELDS or path == ["control", "token"]
        _apply_override(data, path, raw if is_secret else _parse_env_value(raw))
    problems = _read_secret_files(data, base_dir or Path.cwd())
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        set_by = {
            ".".join(path): ENV_PREFIX + "__".join(part.upper() for part in path)
            for path, _ in overrides
        }
        raise ConfigError(_validation_problems(exc, set_by)) from None


def _validation_problems(
    exc: ValidationError, set_by: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem; an unknown key an `MMD_*` variable put there (`set_by`: the
    dotted path each variable sets) names the variable."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"]
        where = _format_loc(error["loc"])
        variable = (set_by or {}).get(where)
        if error["type"] == "extra_forbidden" and variable is not None:
            problems.append(
                f"{variable}: sets {where}, an unknown key (MMD_<SECTION>__<FIELD>; check the "
                "spelling against config/schema.json)"
            )
            continue
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
            # Cross-field errors name their own field first.
            if ": " in message and "." in message.split(": ", 1)[0]:
                problems.append(message)
                continue
        elif error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against config/schema.json)"
        problems.append(f"{_format_loc(error['loc'])}: {message}")
    # A bad key in a top-level default section is in every market that inherits it: say it
    # once, where the user wrote it.
    top = set(problems)
    top_paths = {e["loc"] for e in exc.errors() if e["loc"] and e["loc"][0] != "markets"}
    return [
        p
        for p in dict.fromkeys(problems)
        if not (
            re.match(r"markets\.\d+\.", p)
            and (p.split(".", 2)[2] in top or _market_loc(p) in top_paths)
        )
    ]


def _market_loc(problem: str) -> tuple[str, ...]:
    """The section path a `markets.<i>.` problem has below the market."""
    return tuple(problem.split(": ", 1)[0].split(".")[2:])


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a YAML config file; raise ConfigError with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    return parse_config(data, environ, base_dir=path.parent)


def config_summary(config: Config) -> str:
    """One line describing what the config will do (safe to print: no secrets)."""
    parts = []
    for market in config.markets:
        venue = config.venues[market.venue]
        text = f"{market.symbol} on {venue.name} ({venue.endpoint}) with {market.quoting.model}"
        if market.hedge is not None:
            text += f", hedged {market.hedging.mode} on {market.hedge.venue}"
        parts.append(text)
    plural = "s" if len(parts) > 1 else ""
    return f"ok: {config.mode.value} mode, {len(parts)} market{plural}: " + "; ".join(parts)
