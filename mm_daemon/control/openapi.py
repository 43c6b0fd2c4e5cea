"""The control API's OpenAPI 3.1 description, generated from the bodies of `api`.

Shipped as docs/control-api.yaml (`make schema` writes it; a test keeps it equal to this) and
served by the daemon at /openapi.json.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mm_daemon import __version__
from mm_daemon.control import api

__all__ = ["openapi_document", "openapi_yaml"]

_REF = "#/components/schemas/{model}"
_JSON = "application/json"
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(model)}}}


_UNAUTHORIZED = _answer(
    "No `Authorization: Bearer <token>` header, or not the configured token.", api.ErrorBody
)
_FORBIDDEN = _answer(
    "The control API has no token configured (MMD_CONTROL__TOKEN or control.token_file) "
    "or is turned off (control.enabled: false).",
    api.ErrorBody,
)
_STARTING = _answer(
    "The daemon is still starting (its markets are not built yet); try again once /ready "
    "answers 200.",
    api.ErrorBody,
)


def _body(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "required": False,
        "description": description,
        "content": {_JSON: {"schema": _ref(model)}},
    }


def _action(
    summary: str,
    description: str,
    *,
    body: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _answer("Done (see result).", api.ActionResult)}
    if body is not None:
        responses["400"] = _answer("The body is not JSON.", api.ErrorBody)
    responses["401"] = _UNAUTHORIZED
    responses["403"] = _FORBIDDEN
    responses["409"] = _STARTING
    if body is not None:
        responses["415"] = _answer("A body that is not application/json.", api.ErrorBody)
        responses["422"] = _answer("The body does not fit its schema.", api.ErrorBody)
    responses.update(extra or {})
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "security": _BEARER,
        "responses": dict(sorted(responses.items())),
    }
    if body is not None:
        operation["requestBody"] = body
    return {"post": operation}


def openapi_document() -> dict[str, Any]:
    """The whole description, as a JSON-ready mapping."""
    models: list[type[BaseModel]] = [
        api.Health,
        api.Readiness,
        api.Status,
        api.ActionResult,
        api.ErrorBody,
        api.MarketsRequest,
        api.KillRequest,
    ]
    _, schemas = models_json_schema(
        [(model, "serialization") for model in models[:5]]
        + [(model, "validation") for model in models[5:]],
        ref_template=_REF,
    )
    unknown_market = _answer(
        "A market named in the body is not one of the daemon's.", api.ErrorBody
    )
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Liveness",
                "description": "200 while the event loop answers (container and pod liveness).",
                "security": [],
                "responses": {"200": _answer("Alive.", api.Health)},
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness",
                "description": (
                    "200 when restart recovery is done, the trading loop runs, the journal "
                    "writes and every market is fresh; 503 otherwise, with the reasons. An "
                    "operator's pause or kill does not make it unready: they are decisions, "
                    "shown by /status and the alerts."
                ),
                "security": [],
                "responses": {
                    "200": _answer("Ready.", api.Readiness),
                    "503": _answer("Not ready; see reasons.", api.Readiness),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "description": "The Prometheus text exposition of every mm_ metric.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This description",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI description of this API.",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/status": {
            "get": {
                "summary": "The whole picture",
                "description": (
                    "Mode, instance, uptime, readiness; per market the touch, fair value, "
                    "quotes, open orders, position, P&L by component, markouts, risk state, "
                    "pause and order budget; per asset its exposure and hedge; per venue its "
                    "market data and order entry; the portfolio; the latest warnings and errors."
                ),
                "security": _BEARER,
                "responses": {
                    "200": _answer("The status.", api.Status),
                    "401": _UNAUTHORIZED,
                    "403": _FORBIDDEN,
                },
            }
        },
        "/pause": _action(
            "Pull quotes",
            "Cancel the quotes of the markets named (all by default) and quote nothing until "
            "/resume; risk and hedging keep running. Journaled.",
            body=_body(api.MarketsRequest, "The markets to pause (omitted: all)."),
            extra={"404": unknown_market},
        ),
        "/resume": _action(
            "Quote again",
            "Lift an operator's pause on the markets named (all by default). Journaled.",
            body=_body(api.MarketsRequest, "The markets to resume (omitted: all)."),
            extra={"404": unknown_market},
        ),
        "/kill": _action(
            "Pull everything",
            "Latch every market HALTED (journaled: it survives a restart), stop hedging, and "
            "cancel every order of the daemon's accounts on every venue and symbol it trades, "
            "tracked or not. Nothing is sent until /reset.",
            body=_body(api.KillRequest, "An optional reason."),
        ),
        "/reset": _action(
            "Leave HALTED",
            "Every HALTED market (by a kill or a drawdown) and the portfolio's drawdown latch "
            "leave HALTED; drawdowns are measured from the next P&L. Journaled.",
        ),
        "/reload": _action(
            "Reload the config file",
            "Re-read the YAML file the daemon was started with (SIGHUP does the same) and "
            "apply the tunable fields (quoting, inventory, hedging, risk, portfolio limits, "
            "logging.level) without a restart; orders that still fit stay. Any other change is "
            "refused naming the field, and an invalid file is refused as check-config would; "
            "either way the daemon keeps running on its current config.",
            extra={
                "409": _answer(
                    "Still starting, or a field changed that cannot change while running.",
                    api.ErrorBody,
                ),
                "422": _answer("The file does not validate (one line per problem).", api.ErrorBody),
            },
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mm-daemon control API",
            "version": __version__,
            "description": (
                "Look inside a running mm-daemon and steer it. The probes and /metrics are "
                "open; /status and the actions need `Authorization: Bearer <token>` (the token "
                "of MMD_CONTROL__TOKEN or control.token_file). Every action is logged and "
                "journaled with the caller's address."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:9464"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas["$defs"],
        },
    }


def openapi_yaml() -> str:
    """The description as YAML (docs/control-api.yaml)."""
    header = (
        "# The mm-daemon control API (OpenAPI 3.1), generated from mm_daemon/control/api.py by\n"
        "# `make schema`; the daemon serves the same document at /openapi.json.\n"
    )
    return header + yaml.dump(
        openapi_document(), Dumper=_NoAliases, sort_keys=False, width=100, allow_unicode=True
    )


class _NoAliases(yaml.SafeDumper):
    """Every shared part written out in full (a reader of the file sees no anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        del data
        return True
