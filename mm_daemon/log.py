"""Structured logging: a readable console on a terminal, JSON lines otherwise, secrets redacted.

The standard library's loggers (ccxt, aiohttp, asyncio) are routed through the same processors,
so every line the process writes has one format and passes the same redaction.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_secrets", "register_secret"]

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
) -> None:
    """Configure structlog and the standard library's logging for the whole process.

    `clock` (epoch ns) stamps the lines instead of the system clock (a replay's virtual clock).
    """
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    level_no = logging.getLevelNamesMapping()[level.upper()]

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
    ]
    renderer: Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
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
    root.setLevel(level_no)
    # Third-party libraries are chatty at debug; keep them one notch quieter than ours.
    for noisy in ("ccxt", "aiohttp", "asyncio", "websockets"):
        logging.getLogger(noisy).setLevel(max(level_no, logging.INFO))
    # The websocket client logs every connect and disconnect at info; the streams and order
    # entry report those themselves. Its protocol errors come at error level.
    logging.getLogger("picows").setLevel(max(level_no, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
