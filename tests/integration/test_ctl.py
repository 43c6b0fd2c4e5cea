"""`mm-daemon ctl` as an operator runs it, against a real daemon trading two markets live at a
standalone simulator: the status table, JSON, exit codes, and `ctl top` in a real terminal
(tmux: started, its screen read, quit with q)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.processes import (
    REPO,
    TOKEN,
    DaemonProcess,
    live_config,
    start_daemon,
)
from tests.procs import SimProcess, environ_without_settings
from tests.support import poll

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MARKETS = ("BTC/USDT@sim-spot", "BTC/USDT:USDT@sim-perp")
EXIT_REFUSED, EXIT_AUTH, EXIT_UNREACHABLE = 1, 3, 4


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("ctl")
    sim: SimProcess = SimProcess.start(folder)
    try:
        running = start_daemon(live_config(sim, folder / "state"), folder)
        try:
            yield running
        finally:
            running.stop()
    finally:
        sim.stop()


def ctl(
    url: str, *args: str, token: str | None = TOKEN, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = environ_without_settings()
    env["COLUMNS"] = str(columns)
    if token is not None:
        env["MMD_CONTROL__TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "mm_daemon", "ctl", "--url", url, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ctl_status_prints_the_status_table(daemon: DaemonProcess) -> None:
    result = ctl(daemon.url, "status")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for market in MARKETS:
        assert market in out
    for heading in ("markets", "assets and hedges", "venues", "fair", "position", "budget"):
        assert heading in out
    assert "live" in out.splitlines()[0]


def test_ctl_status_json_is_the_status_body(daemon: DaemonProcess) -> None:
    result = ctl(daemon.url, "--json", "status")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert [m["name"] for m in body["markets"]] == list(MARKETS)


def test_ctl_exits_3_on_a_wrong_token(daemon: DaemonProcess) -> None:
    result = ctl(daemon.url, "status", token="a-wrong-token-0000000000")
    assert result.returncode == EXIT_AUTH
    assert "401" in result.stderr


def test_ctl_exits_1_when_the_daemon_refuses(daemon: DaemonProcess) -> None:
    result = ctl(daemon.url, "pause", "no-such-market")
    assert result.returncode == EXIT_REFUSED
    assert "no market 'no-such-market'" in result.stderr


def test_ctl_exits_4_when_nothing_answers() -> None:
    result = ctl("http://127.0.0.1:9", "status")
    assert result.returncode == EXIT_UNREACHABLE
    assert "no answer" in result.stderr


def test_ctl_pause_then_resume_say_what_they_did(daemon: DaemonProcess) -> None:
    paused = ctl(daemon.url, "pause", MARKETS[0])
    resumed = ctl(daemon.url, "resume", MARKETS[0])
    assert (paused.returncode, resumed.returncode) == (0, 0)
    assert paused.stdout.strip() == f"pause: ok: paused {MARKETS[0]}"
    assert resumed.stdout.strip() == f"resume: ok: resumed {MARKETS[0]}"


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        message = "tmux is not installed (.ci/system-packages.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_ctl_top_shows_both_markets_rows_and_quits_on_q(daemon: DaemonProcess) -> None:
    tmux = _tmux()
    socket = f"mmd-top-{uuid.uuid4().hex[:8]}"  # a tmux server of its own

    def tmux_run(*args: str) -> str:
        done = subprocess.run(
            [tmux, "-L", socket, *args], capture_output=True, text=True, timeout=20, check=True
        )
        return done.stdout

    command = " ".join(
        [
            "env -u COLUMNS -u LINES",  # the terminal's size, not the test runner's
            f"MMD_CONTROL__TOKEN={shlex.quote(TOKEN)}",
            shlex.quote(sys.executable),
            "-m mm_daemon ctl --url",
            shlex.quote(daemon.url),
            "top; echo top-exited-$?; sleep 60",
        ]
    )
    tmux_run("new-session", "-d", "-x", "220", "-y", "50", "-c", str(REPO), command)
    try:
        last_screen = [""]

        def screen_with(*texts: str) -> str | None:
            screen = last_screen[0] = tmux_run("capture-pane", "-p")
            return screen if all(text in screen for text in texts) else None

        try:
            screen = poll(
                lambda: screen_with(*MARKETS, "refreshed every second"),
                deadline_seconds=30.0,
                interval_seconds=0.2,
                what="ctl top showing both markets",
            )
        except BaseException:
            print(last_screen[0])  # noqa: T201  the failure shows what the terminal had instead
            raise
        market_rows = [line for line in screen.splitlines() if any(m in line for m in MARKETS)]
        assert len(market_rows) >= 2, screen
        tmux_run("send-keys", "q")
        exited = poll(
            lambda: screen_with("top-exited-"),
            deadline_seconds=10.0,
            interval_seconds=0.2,
            what="ctl top quitting on q",
        )
        assert "top-exited-0" in exited
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, check=False)
