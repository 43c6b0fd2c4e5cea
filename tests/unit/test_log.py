"""Logs: JSON lines off a terminal, secrets never written, library logs routed through."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mm_daemon.log import (
    REDACTED,
    configure_logging,
    get_logger,
    recent_problems,
    register_secret,
    set_level,
    terminal_stream,
)


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging("debug", "auto", stream=out)
    return out


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_when_not_a_terminal(stream: io.StringIO) -> None:
    get_logger("t").info("quote_sent", price=65000.5)
    (line,) = _lines(stream)
    assert line["event"] == "quote_sent"
    assert line["price"] == 65000.5
    assert line["level"] == "info"
    assert "timestamp" in line


def test_lines_take_their_time_from_a_given_clock() -> None:
    out = io.StringIO()
    recorded_ns = 1_723_161_255_030_314_667  # a receive time of the recorded captures
    configure_logging("info", "json", stream=out, clock=lambda: recorded_ns)
    get_logger("t").info("fill")
    logging.getLogger("ccxt").warning("library line")
    assert [line["timestamp"] for line in _lines(out)] == ["2024-08-08T23:54:15.030314Z"] * 2


def test_level_from_config_filters_lower_levels() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    get_logger("t").info("hidden")
    get_logger("t").warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]


def test_registered_secret_is_redacted_everywhere(stream: io.StringIO) -> None:
    register_secret("sk-live-abcdef123")
    get_logger("t").error(
        "auth failed for sk-live-abcdef123",
        detail={"header": "X sk-live-abcdef123"},
        items=["sk-live-abcdef123"],
    )
    text = stream.getvalue()
    assert "sk-live-abcdef123" not in text
    assert REDACTED in text


def test_sensitive_keys_are_blanked(stream: io.StringIO) -> None:
    get_logger("t").info("signed", signature="abc", api_key="k", apiKey="k2")
    (line,) = _lines(stream)
    assert line["signature"] == REDACTED
    assert line["api_key"] == REDACTED
    assert line["apiKey"] == REDACTED


def test_exception_text_is_redacted(stream: io.StringIO) -> None:
    register_secret("exc-secret-77777")
    try:
        raise RuntimeError("request with exc-secret-77777 failed")  # noqa: TRY301  the log call under test needs a live exception
    except RuntimeError:
        get_logger("t").exception("boom")
    assert "exc-secret-77777" not in stream.getvalue()


def test_stdlib_library_logs_go_through_the_same_pipeline(stream: io.StringIO) -> None:
    register_secret("lib-secret-55555")
    logging.getLogger("ccxt.base").warning("ccxt says lib-secret-55555")
    (line,) = _lines(stream)
    assert line["logger"] == "ccxt.base"
    assert line["event"] == f"ccxt says {REDACTED}"


def test_console_format_is_human_readable() -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    get_logger("t").info("hello", n=1)
    text = out.getvalue()
    assert "hello" in text
    assert "n=1" in text
    assert not text.startswith("{")


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_per_fill_lines_are_debug_only_on_a_terminal() -> None:
    out = _Terminal()
    configure_logging("info", "auto", stream=out)
    get_logger("t").info("fill", price=1.0)
    get_logger("t").info("hedge_sent", size=1.0)
    get_logger("t").info("risk_state", state="HALTED")
    text = out.getvalue()
    assert "fill" not in text
    assert "hedge_sent" not in text
    assert "risk_state" in text


def test_per_fill_lines_show_on_a_terminal_at_debug_level() -> None:
    out = _Terminal()
    configure_logging("debug", "auto", stream=out)
    get_logger("t").info("fill", price=1.0)
    assert "fill" in out.getvalue()


def test_per_fill_lines_show_on_a_terminal_when_asked_for() -> None:
    out = _Terminal()
    configure_logging("info", "auto", stream=out, fill_lines_on_terminal=True)
    get_logger("t").info("fill", price=1.0)
    assert "fill" in out.getvalue()


def test_json_logs_off_a_terminal_keep_every_fill() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    get_logger("t").info("fill", price=1.0)
    assert [line["event"] for line in _lines(out)] == ["fill"]


def test_the_terminal_stream_is_known_only_on_a_terminal() -> None:
    out = _Terminal()
    configure_logging("info", "auto", stream=out)
    assert terminal_stream() is out
    configure_logging("info", "auto", stream=io.StringIO())
    assert terminal_stream() is None


def test_the_latest_warnings_and_errors_are_kept_redacted(stream: io.StringIO) -> None:
    register_secret("kept-secret-31415")
    get_logger("t").info("routine")
    get_logger("t").error("venue_failed", reason="key kept-secret-31415 refused")
    latest = recent_problems()[-1]
    assert (latest.level, latest.event) == ("error", "venue_failed")
    assert "kept-secret-31415" not in latest.detail
    assert all(p.event != "routine" for p in recent_problems())


def test_the_level_changes_while_running(stream: io.StringIO) -> None:
    set_level("warning")
    get_logger("t").info("hidden")
    set_level("info")
    get_logger("t").info("shown")
    assert [line["event"] for line in _lines(stream)] == ["shown"]
