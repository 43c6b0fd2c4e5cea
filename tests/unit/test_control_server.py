"""The control API's HTTP server on a loopback port, in front of a recording target: who may
call what (token, no token, control off), how bodies are read, what is counted and audited."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from mm_daemon.control import api
from mm_daemon.control.openapi import openapi_document, openapi_yaml
from mm_daemon.control.server import ControlError, ControlServer
from mm_daemon.log import configure_logging
from tests.support import sample

TOKEN = "unit-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


class Target:
    """A ControlTarget that records every call and answers plainly."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.audited: list[tuple[str, str, str]] = []
        self.callers: list[str] = []
        self.details: list[str] = []
        self.fail_with: Exception | None = None

    def health(self) -> api.Health:
        return api.Health(status="ok", uptime_seconds=1.0)

    def readiness(self) -> api.Readiness:
        return api.Readiness(ready=False, reasons=["recovering"])

    def status(self) -> api.Status:
        return api.Status(
            instance_id="mmd-test",
            version="0",
            mode="paper",
            run_id=None,
            state="recovering",
            started_at="2024-01-01T00:00:00+00:00",
            uptime_seconds=1.0,
            readiness=self.readiness(),
            markets=[],
            failed_markets={},
            assets=[],
            venues=[],
            portfolio=None,
            errors=[],
        )

    def _result(self, action: api.Action, markets: list[str] | None) -> api.ActionResult:
        if self.fail_with is not None:
            raise self.fail_with
        return api.ActionResult(action=action, result="ok", detail="done", markets=markets or [])

    async def pause(self, markets: list[str] | None, caller: str) -> api.ActionResult:
        self.calls.append(("pause", markets))
        self.callers.append(caller)
        return self._result("pause", markets)

    async def resume(self, markets: list[str] | None, caller: str) -> api.ActionResult:
        self.calls.append(("resume", markets))
        self.callers.append(caller)
        return self._result("resume", markets)

    async def kill(self, reason: str | None, caller: str) -> api.ActionResult:
        self.calls.append(("kill", reason))
        self.callers.append(caller)
        return self._result("kill", None)

    async def reset(self, caller: str) -> api.ActionResult:
        self.calls.append(("reset", None))
        self.callers.append(caller)
        return self._result("reset", None)

    async def reload(self, caller: str) -> api.ActionResult:
        self.calls.append(("reload", None))
        self.callers.append(caller)
        return self._result("reload", None)

    def audit(self, action: str, caller: str, result: str, detail: str) -> None:
        self.audited.append((action, caller, result))
        self.details.append(detail)


class Served:
    def __init__(self, server: ControlServer, target: Target, registry: CollectorRegistry) -> None:
        self.server = server
        self.target = target
        self.registry = registry
        self.session = aiohttp.ClientSession()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Content-Type": content_type} if data is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.server.url + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            return response.status, body, dict(response.headers)


async def _serve(token: str | None, *, enabled: bool = True) -> Served:
    registry = CollectorRegistry()
    target = Target()
    requests = Counter("mm_control_requests", "test", ("action", "result"), registry=registry)
    server = ControlServer(
        target,
        registry,
        host="127.0.0.1",
        port=0,
        token=SecretStr(token) if token else None,
        enabled=enabled,
        requests=requests,
    )
    await server.start()
    return Served(server, target, registry)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    running = await _serve(TOKEN)
    try:
        yield running
    finally:
        await running.session.close()
        await running.server.stop()


@pytest.fixture
async def tokenless() -> AsyncIterator[Served]:
    running = await _serve(None)
    try:
        yield running
    finally:
        await running.session.close()
        await running.server.stop()


async def test_health_answers_without_a_token(served: Served) -> None:
    status, body, _ = await served.call("GET", "/health", token=None)
    assert status == 200
    assert body["status"] == "ok"


async def test_ready_answers_503_with_the_reasons_when_not_ready(served: Served) -> None:
    status, body, _ = await served.call("GET", "/ready", token=None)
    assert status == 503
    assert body == {"ready": False, "reasons": ["recovering"]}


async def test_metrics_are_served_without_a_token(served: Served) -> None:
    status, body, headers = await served.call("GET", "/metrics", token=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "mm_control_requests_total" in body


async def test_status_without_a_token_is_401_with_a_bearer_challenge(served: Served) -> None:
    status, body, headers = await served.call("GET", "/status", token=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in body["error"]


async def test_an_action_with_a_wrong_token_is_401_and_not_done(served: Served) -> None:
    status, _, _ = await served.call("POST", "/kill", token=TOKEN + "x")
    assert status == 401
    assert served.target.calls == []


async def test_the_right_token_gets_the_status(served: Served) -> None:
    status, body, _ = await served.call("GET", "/status")
    assert status == 200
    assert body["instance_id"] == "mmd-test"


async def test_without_a_configured_token_control_is_403_and_health_200(
    tokenless: Served,
) -> None:
    status, body, _ = await tokenless.call("POST", "/pause", token="anything-at-all-1234")
    assert status == 403
    assert "MMD_CONTROL__TOKEN" in body["error"]
    assert tokenless.target.calls == []
    assert (await tokenless.call("GET", "/health", token=None))[0] == 200


async def test_a_control_api_turned_off_answers_403() -> None:
    running = await _serve(TOKEN, enabled=False)
    try:
        status, body, _ = await running.call("GET", "/status")
        assert status == 403
        assert "control.enabled" in body["error"]
    finally:
        await running.session.close()
        await running.server.stop()


async def test_pause_reads_the_markets_of_its_body(served: Served) -> None:
    status, body, _ = await served.call(
        "POST", "/pause", data=json.dumps({"markets": ["BTC/USDT@x"]}).encode()
    )
    assert status == 200
    assert served.target.calls == [("pause", ["BTC/USDT@x"])]
    assert body["markets"] == ["BTC/USDT@x"]


async def test_a_body_that_is_not_json_is_400(served: Served) -> None:
    status, _, _ = await served.call("POST", "/pause", data=b"{markets")
    assert status == 400
    assert served.target.calls == []


async def test_a_body_off_its_schema_is_422_naming_the_field(served: Served) -> None:
    status, body, _ = await served.call(
        "POST", "/pause", data=json.dumps({"markets": "BTC"}).encode()
    )
    assert status == 422
    assert body["problems"][0].startswith("markets:")


async def test_an_unknown_body_key_is_422(served: Served) -> None:
    status, _, _ = await served.call("POST", "/kill", data=json.dumps({"why": "x"}).encode())
    assert status == 422


async def test_a_body_that_is_not_application_json_is_415(served: Served) -> None:
    status, _, _ = await served.call("POST", "/kill", data=b"reason", content_type="text/plain")
    assert status == 415


async def test_a_refusal_of_the_target_keeps_its_status_and_problems(served: Served) -> None:
    served.target.fail_with = ControlError(422, "invalid config", ["quoting.spread_bps: bad"])
    status, body, _ = await served.call("POST", "/reload")
    assert status == 422
    assert body == {"error": "invalid config", "problems": ["quoting.spread_bps: bad"]}
    assert served.target.audited == [("reload", "127.0.0.1", "refused")]


async def test_a_failing_target_answers_500_and_the_server_goes_on(served: Served) -> None:
    served.target.fail_with = RuntimeError("boom")
    status, body, _ = await served.call("POST", "/reset")
    assert status == 500
    assert body["error"] == "internal error: RuntimeError"
    served.target.fail_with = None
    assert (await served.call("POST", "/reset"))[0] == 200


async def test_every_request_is_counted_by_action_and_result(served: Served) -> None:
    await served.call("POST", "/pause")
    await served.call("POST", "/pause", token=None)
    await served.call("GET", "/status")
    labels = {"action": "pause"}
    assert sample(served.registry, "mm_control_requests_total", **labels, result="ok") == 1
    assert (
        sample(served.registry, "mm_control_requests_total", **labels, result="unauthorized") == 1
    )
    assert sample(served.registry, "mm_control_requests_total", action="status", result="ok") == 1
    assert sample(served.registry, "mm_control_requests_total", action="kill", result="ok") == 0


async def test_done_actions_are_audited_with_the_callers_address(served: Served) -> None:
    await served.call("POST", "/resume")
    assert served.target.callers == ["127.0.0.1"]
    assert served.target.audited == [("resume", "127.0.0.1", "ok")]
    assert served.target.details == ["done"]


async def test_neither_token_offered_is_ever_logged(served: Served) -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    await served.call("POST", "/kill", token="a-wrong-token-fedcba987654")
    await served.call("POST", "/kill")
    text = out.getvalue()
    assert "control_unauthorized" in text
    assert "a-wrong-token-fedcba987654" not in text
    assert TOKEN not in text


def test_the_shipped_description_is_the_one_the_code_generates() -> None:
    shipped = (REPO / "docs" / "control-api.yaml").read_text(encoding="utf-8")
    assert shipped == openapi_yaml(), "run `make schema` to regenerate docs/control-api.yaml"


def test_the_description_documents_every_route_the_server_serves() -> None:
    document = openapi_document()
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in ControlServer(Target(), CollectorRegistry(), host="", port=0, token=None)
        .app()
        .router.routes()
        if route.resource is not None
    }
    described = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert served == described
    assert yaml.safe_load(openapi_yaml())["openapi"] == "3.1.0"
