"""The daemon's one HTTP server: /metrics, the probes, and the control API (aiohttp).

- `/health`, `/ready`, `/metrics`, `/openapi.json` are open (probes and Prometheus).
- `/status` and the actions (`/pause`, `/resume`, `/kill`, `/reset`, `/reload`) need
  `Authorization: Bearer <token>`; the token is compared in constant time and never logged.
  No token configured (or `control.enabled: false`): 403 with a line saying how to set one.
  Wrong or missing: 401.
- Every action is counted (`mm_control_requests_total{action,result}`), logged with the caller's
  address, and handed to the target's `audit` (the journal) whether it was done or refused.
- A handler that fails answers 500 and is logged; the daemon goes on.

The server runs on the daemon's event loop; the Prometheus exposition is rendered on a worker
thread (the registry has its own locks), as the thread of prometheus-client's server did.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from mm_daemon.control import api
from mm_daemon.control.openapi import openapi_document
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter
    from pydantic import SecretStr

__all__ = ["REQUEST_RESULTS", "ControlError", "ControlServer", "ControlTarget"]

log = get_logger(__name__)

REQUEST_RESULTS = (
    "ok",
    "unchanged",
    "partial",
    "refused",
    "unauthorized",
    "forbidden",
    "error",
)
"""The `result` label of mm_control_requests_total: an action's own result, `refused` (the
daemon said no: starting, unknown market, invalid config), `unauthorized` (401), `forbidden`
(403: no token or control off), `error` (500)."""

COUNTED = ("status", *api.ACTIONS)
"""The `action` label of mm_control_requests_total."""

_Body = TypeVar("_Body", bound=BaseModel)


class ControlError(Exception):
    """An answer other than 200: status, one line, and the problems (if any) one per line."""

    def __init__(self, status: int, error: str, problems: list[str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = problems or []


class ControlTarget(Protocol):
    """What the server asks of the daemon (`mm_daemon.engine.control.Controller`)."""

    def health(self) -> api.Health: ...

    def readiness(self) -> api.Readiness: ...

    def status(self) -> api.Status: ...

    async def pause(self, markets: list[str] | None, caller: str) -> api.ActionResult: ...

    async def resume(self, markets: list[str] | None, caller: str) -> api.ActionResult: ...

    async def kill(self, reason: str | None, caller: str) -> api.ActionResult: ...

    async def reset(self, caller: str) -> api.ActionResult: ...

    async def reload(self, caller: str) -> api.ActionResult: ...

    def audit(self, action: str, caller: str, result: str, detail: str) -> None:
        """Record an authorized action, done or refused (the journal)."""


def _digest(token: str) -> bytes:
    # Equal-length digests: the comparison takes the same time whatever the length offered.
    return hashlib.sha256(token.encode()).digest()


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(), status=status, content_type="application/json"
    )


def _error(status: int, error: str, problems: list[str] | None = None) -> web.Response:
    return _json(api.ErrorBody(error=error, problems=problems or []), status)


class ControlServer:
    """Serves `target` and `registry` on `host:port` until `stop`."""

    def __init__(
        self,
        target: ControlTarget,
        registry: CollectorRegistry,
        *,
        host: str,
        port: int,
        token: SecretStr | None,
        enabled: bool = True,
        requests: Counter | None = None,
    ) -> None:
        self._target = target
        self._registry = registry
        self._host = host
        self._port = port
        self._token_digest = _digest(token.get_secret_value()) if token is not None else None
        self._enabled = enabled
        self._requests = requests
        if requests is not None:
            for action in COUNTED:
                for result in REQUEST_RESULTS:
                    requests.labels(action, result)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._failures])
        router = app.router
        router.add_get("/health", self._health, allow_head=False)
        router.add_get("/ready", self._ready, allow_head=False)
        router.add_get("/metrics", self._metrics, allow_head=False)
        router.add_get("/openapi.json", self._openapi, allow_head=False)
        router.add_get("/status", self._status, allow_head=False)
        router.add_post("/pause", self._pause)
        router.add_post("/resume", self._resume)
        router.add_post("/kill", self._kill)
        router.add_post("/reset", self._reset)
        router.add_post("/reload", self._reload)
        return app

    async def start(self) -> str:
        """Listen; return the base URL (the real port when 0 was asked). OSError when the
        address cannot be bound."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        self.url = f"http://{shown}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing -------------------------------------------------------------------------------

    @web.middleware
    async def _failures(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control_failed", path=request.path, error=repr(exc))
            action = request.path.strip("/")
            if action in COUNTED:
                self._count(action, "error")
            return _error(500, f"internal error: {type(exc).__name__}")

    def _count(self, action: str, result: str) -> None:
        if self._requests is not None:
            self._requests.labels(action, result).inc()

    def _refuse_unauthorized(self, request: web.Request, action: str) -> web.Response | None:
        """None when the request may go on; else the 401/403 answer (counted, logged)."""
        caller = request.remote or "unknown"
        if not self._enabled or self._token_digest is None:
            why = (
                "the control API is off (control.enabled: false)"
                if not self._enabled
                else "no control token is configured: set MMD_CONTROL__TOKEN or "
                "control.token_file and restart the daemon"
            )
            self._count(action, "forbidden")
            log.warning("control_forbidden", action=action, caller=caller)
            return _error(403, why)
        header = request.headers.get("Authorization", "")
        scheme, _, offered = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            _digest(offered.strip()), self._token_digest
        ):
            self._count(action, "unauthorized")
            log.warning("control_unauthorized", action=action, caller=caller)
            response = _error(401, "missing or wrong token (Authorization: Bearer <token>)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="mm-daemon"'
            return response
        return None

    async def _body(self, request: web.Request, model: type[_Body]) -> _Body | None:
        """The request's JSON body as `model`; None for no body."""
        raw = await request.read()
        if not raw.strip():
            return None
        if request.content_type != "application/json":
            raise ControlError(415, "the body must be application/json")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ControlError(400, "the body is not JSON") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            ]
            raise ControlError(422, "the body does not fit its schema", problems) from None

    async def _act(
        self,
        request: web.Request,
        action: str,
        run: Callable[[str], Awaitable[api.ActionResult]],
    ) -> web.Response:
        refused = self._refuse_unauthorized(request, action)
        if refused is not None:
            return refused
        caller = request.remote or "unknown"
        started = time.monotonic()
        try:
            result = await run(caller)
        except ControlError as exc:
            self._count(action, "refused")
            log.warning("control", action=action, caller=caller, result="refused", detail=exc.error)
            if exc.status not in (400, 415):  # the daemon's own refusals, not a garbled request
                self._target.audit(action, caller, "refused", exc.error)
            return _error(exc.status, exc.error, exc.problems)
        self._count(action, result.result)
        log.info(
            "control",
            action=action,
            caller=caller,
            result=result.result,
            detail=result.detail,
            markets=result.markets,
            seconds=round(time.monotonic() - started, 4),
        )
        self._target.audit(action, caller, result.result, result.detail)
        return _json(result)

    # -- open endpoints -------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return _json(self._target.health())

    async def _ready(self, _request: web.Request) -> web.Response:
        readiness = self._target.readiness()
        return _json(readiness, 200 if readiness.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(
            None, generate_latest, self._registry
        )
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    # -- authorized endpoints -------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request, "status")
        if refused is not None:
            return refused
        self._count("status", "ok")
        return _json(self._target.status())

    async def _pause(self, request: web.Request) -> web.Response:
        async def run(caller: str) -> api.ActionResult:
            body = await self._body(request, api.MarketsRequest)
            return await self._target.pause(body.markets if body else None, caller)

        return await self._act(request, "pause", run)

    async def _resume(self, request: web.Request) -> web.Response:
        async def run(caller: str) -> api.ActionResult:
            body = await self._body(request, api.MarketsRequest)
            return await self._target.resume(body.markets if body else None, caller)

        return await self._act(request, "resume", run)

    async def _kill(self, request: web.Request) -> web.Response:
        async def run(caller: str) -> api.ActionResult:
            body = await self._body(request, api.KillRequest)
            return await self._target.kill(body.reason if body else None, caller)

        return await self._act(request, "kill", run)

    async def _reset(self, request: web.Request) -> web.Response:
        return await self._act(request, "reset", self._target.reset)

    async def _reload(self, request: web.Request) -> web.Response:
        return await self._act(request, "reload", self._target.reload)
