"""Structured logging: a readable console on a terminal, JSON lines otherwise, secrets redacted.

The standard library's loggers (ccxt, aiohttp, asyncio) are routed through the same processors,
so every line the process writes has one format and passes the same redaction.

On a terminal, the events that come once per fill (`QUIET_ON_TERMINAL`) are written at debug
level only (the daemon prints a status line instead); JSON logs keep every event. The latest
warnings and errors, redacted, are kept for the daemon's /status (`recent_problems`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "QUIET_ON_TERMINAL",
    "REDACTED",
    "Problem",
    "configure_logging",
    "get_logger",
    "recent_problems",
    "redact_secrets",
    "register_secret",
    "set_level",
    "terminal_stream",
]

REDACTED = "***"
_SENSITIVE_KEYS = frozenset(
    {
        "api_key",
        "api_secret",
        "apikey",
        "secret",
        "password",
        "signature",
        "listenkey",
        "x-mbx-apikey",
    }
)
_MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words and numbers

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

QUIET_ON_TERMINAL = frozenset({"fill", "hedge_sent", "run_summary"})
"""Events that would scroll everything else away on a terminal: once per fill, and the summary's
one long line (its table is printed to stdout)."""

_PROBLEMS_KEPT = 20
_PROBLEM_LEVELS = frozenset({"warning", "error", "critical", "exception"})
_NOT_DETAIL = frozenset({"event", "level", "logger", "timestamp"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One recent warning or error, already redacted."""

    timestamp: str
    level: str
    event: str
    detail: str  # the other fields as key=value


_problems: deque[Problem] = deque(maxlen=_PROBLEMS_KEPT)
_terminal: TextIO | None = None  # the log stream, when it is a terminal showing console lines


def register_secret(value: str) -> None:
    """Make every later log line replace `value` wherever it appears."""
    if len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def _scrub(value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secrets) for v in value)
    if isinstance(value, BaseException):
        return _scrub(repr(value), secrets)
    return value


def redact_secrets(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """structlog processor: blank sensitive keys and every registered secret value."""
    secrets = tuple(_secrets)
    for key in list(event_dict):
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif secrets:
            event_dict[key] = _scrub(event_dict[key], secrets)
    return event_dict


def _keep_problems(
    _logger: WrappedLogger, method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """structlog processor (after redaction): remember the latest warnings and errors."""
    level = str(event_dict.get("level", method))
    if level in _PROBLEM_LEVELS:
        detail = " ".join(
            f"{key}={value}" for key, value in event_dict.items() if key not in _NOT_DETAIL
        )
        _problems.append(
            Problem(
                timestamp=str(event_dict.get("timestamp", "")),
                level=level,
                event=str(event_dict.get("event", "")),
                detail=detail[:500],
            )
        )
    return event_dict


def recent_problems() -> list[Problem]:
    """The latest warnings and errors logged (oldest first, at most 20), redacted."""
    return list(_problems)


def _quiet_per_fill_events(
    _logger: WrappedLogger, method: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """structlog processor on a terminal: per-fill events only at debug level."""
    if (
        method == "info"
        and event_dict.get("event") in QUIET_ON_TERMINAL
        and logging.getLogger().level > logging.DEBUG
    ):
        raise structlog.DropEvent
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def clock_timestamper(clock: Callable[[], int]) -> Processor:
    """structlog processor: `timestamp` (ISO 8601, UTC) read from `clock` (epoch ns) instead of
    the system clock; a replay stamps its lines with the recorded time it is at."""

    def stamp(
        _logger: WrappedLogger, _method: str, event_dict: EventDict
    ) -> MutableMapping[str, Any]:
        seconds, micros = divmod(clock() // 1_000, 1_000_000)
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
        event_dict["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return event_dict

    return stamp


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "console", "json"] = "auto",
    stream: TextIO | None = None,
    clock: Callable[[], int] | None = None,
    *,
    fill_lines_on_terminal: bool = False,
) -> None:
    """Configure structlog and the standard library's logging for the whole process.

    `clock` (epoch ns) stamps the lines instead of the system clock (a replay's virtual clock).
    `fill_lines_on_terminal` keeps the per-fill events at info on a terminal too.
    """
    global _terminal  # noqa: PLW0603  the process has one log configuration
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    on_terminal = use_console and stream.isatty()
    _terminal = stream if on_terminal else None

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        (
            structlog.processors.TimeStamper(fmt="iso", utc=True)
            if clock is None
            else clock_timestamper(clock)
        ),
        structlog.processors.format_exc_info,
        redact_secrets,
        _keep_problems,
    ]
    renderer: Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)

    quiet: list[Processor] = (
        [_quiet_per_fill_events] if on_terminal and not fill_lines_on_terminal else []
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *quiet,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """The lowest level written from now on (a live config reload changes it)."""
    level_no = logging.getLevelNamesMapping()[level.upper()]
    logging.getLogger().setLevel(level_no)
    # Third-party libraries are chatty at debug; keep them one notch quieter than ours.
    for noisy in ("ccxt", "aiohttp", "asyncio", "websockets"):
        logging.getLogger(noisy).setLevel(max(level_no, logging.INFO))
    # The websocket client logs every connect and disconnect at info; the streams and order
    # entry report those themselves. Its protocol errors come at error level.
    logging.getLogger("picows").setLevel(max(level_no, logging.WARNING))


def terminal_stream() -> TextIO | None:
    """The log stream when it is a terminal showing console lines (where a status line goes),
    else None."""
    return _terminal


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
