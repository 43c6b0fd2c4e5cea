"""The daemon's runtime: wiring, task supervision, and a clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import suppress

import uvloop

from mm_daemon.config import Config, ConfigError
from mm_daemon.engine.metrics import Metrics, MetricsServer
from mm_daemon.log import configure_logging, get_logger, register_secret

__all__ = ["Daemon", "check_mainnet_allowed", "run_daemon"]

log = get_logger(__name__)

MAINNET_CONFIRM_ENV = "MMD_CONFIRM_MAINNET"


def check_mainnet_allowed(config: Config, environ: dict[str, str] | None = None) -> None:
    """Refuse live orders on mainnet unless both the config and the environment say so."""
    env = os.environ if environ is None else environ
    if config.mode.value != "live":
        return
    venues = [config.venues.maker, *([config.venues.hedge] if config.venues.hedge else [])]
    for role, venue in zip(("maker", "hedge"), venues, strict=False):
        if not venue.is_mainnet:
            continue
        if not config.allow_mainnet:
            raise ConfigError(
                [
                    f"venues.{role}.endpoint: live orders on mainnet need allow_mainnet: true "
                    f"and {MAINNET_CONFIRM_ENV}=yes in the environment"
                ]
            )
        if env.get(MAINNET_CONFIRM_ENV, "").lower() != "yes":
            raise ConfigError(
                [
                    f"venues.{role}.endpoint: mainnet is allowed in the config; confirm it by "
                    f"setting {MAINNET_CONFIRM_ENV}=yes in the environment"
                ]
            )


def _register_config_secrets(config: Config) -> None:
    for venue in (config.venues.maker, config.venues.hedge):
        if venue is None:
            continue
        for secret in (venue.api_key, venue.api_secret):
            if secret is not None:
                register_secret(secret.get_secret_value())


class Daemon:
    """Owns every task of a run; `run` returns the process exit code."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._metrics_server: MetricsServer | None = None
        self.metrics_url: str | None = None

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def run(self, duration_seconds: float | None = None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        started = time.monotonic()
        try:
            self._start_metrics()
            log.info(
                "daemon_started",
                mode=self.config.mode.value,
                maker=self.config.venues.maker.name,
                symbol=self.config.venues.maker.symbol,
            )
            self.metrics.up.set(1)
            if duration_seconds is not None:
                loop.call_later(duration_seconds, self.request_stop, "duration")
            await self._stop.wait()
            log.info("shutdown_started", reason=self._stop_reason)
        finally:
            self.metrics.up.set(0)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with suppress(Exception):
                    loop.remove_signal_handler(sig)
            if self._metrics_server is not None:
                self._metrics_server.stop()
        log.info("shutdown_complete", uptime_seconds=round(time.monotonic() - started, 3))
        return 0

    def _start_metrics(self) -> None:
        cfg = self.config.metrics
        if not cfg.enabled:
            return
        self._metrics_server = MetricsServer(self.metrics.registry, cfg.host, cfg.port)
        try:
            self.metrics_url = self._metrics_server.start()
        except OSError as exc:
            raise ConfigError(
                [f"metrics.port: cannot serve on {cfg.host}:{cfg.port}: {exc.strerror}"]
            ) from None
        self.metrics.inventory_limit_base.set(self.config.inventory.limit_base)
        log.info("metrics_serving", url=self.metrics_url)


def run_daemon(config: Config, duration_seconds: float | None = None) -> int:
    """Entry point of `mm-daemon run`: logging, safety checks, then the event loop."""
    configure_logging(config.logging.level.value, config.logging.format)
    _register_config_secrets(config)
    check_mainnet_allowed(config)
    return uvloop.run(Daemon(config).run(duration_seconds))
