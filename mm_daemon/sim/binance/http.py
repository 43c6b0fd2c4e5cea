"""The HTTP side shared by both dialects: request parameters, signed-request checks, Binance
error answers, fault-driven REST errors, market-stream websockets and the admin endpoints."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import WSMsgType, web

from mm_daemon.binance.limits import (
    BAN_CODE,
    REST_ORDER_ENDPOINTS,
    REST_WEIGHTS,
    request_weight,
)
from mm_daemon.binance.signing import signature_payload, verify_signature
from mm_daemon.sim.binance.common import (
    BinanceError,
    check_timestamp,
    expected_secret,
    malformed_params,
    server_time_ms,
)
from mm_daemon.sim.binance.streams import Connection
from mm_daemon.sim.faults import FaultSpec
from mm_daemon.sim.matching import ExecutionReport
from mm_daemon.sim.venue import ConnectionKind, SimVenue, UserSink, VenueSymbol

__all__ = [
    "Handler",
    "Params",
    "add_admin_routes",
    "add_stream_routes",
    "depth",
    "json_response",
    "listen_key_endpoint",
    "ping",
    "private",
    "public",
    "rest",
    "server_time",
    "text_frames",
    "user_data_sink",
    "websocket",
    "ws_api_params",
]

Params = dict[str, str]
Handler = Callable[[SimVenue, Params, str | None], Awaitable[Any] | Any]
"""What `rest` serves: (venue, parameters, API key of a signed request or None) -> JSON body."""
PublicHandler = Callable[[SimVenue, Params], Any]
PrivateHandler = Callable[[SimVenue, Params, str], Any]
VENUE_KEY: web.AppKey[SimVenue] = web.AppKey("venue", SimVenue)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(exc: BinanceError, *, limit_error: bool = False) -> web.Response:
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    # A REST limit error is `{"code", "msg"}` with Retry-After; `data` is the WS-API's.
    body = {"code": exc.code, "msg": exc.msg} if limit_error else exc.body()
    return json_response(body, status=exc.http_status, headers=headers)


def _usage_headers(
    response: web.Response, venue: SimVenue, api_key: str | None, ip: str, *, orders: bool
) -> None:
    """X-MBX-USED-WEIGHT-* on every answer, X-MBX-ORDER-COUNT-* on a successful order."""
    if venue.limiter is not None:
        response.headers.update(
            venue.limiter.usage_headers(api_key, ip, venue.now_ms(), orders=orders)
        )


async def _params(request: web.Request) -> tuple[Params, str, str]:
    query = request.rel_url.raw_query_string
    body = ""
    if request.can_read_body:
        body = await request.text()
    params: Params = {}
    for raw in (query, body):
        if raw:
            try:
                params.update(parse_qsl(raw, keep_blank_values=True, strict_parsing=True))
            except ValueError:
                raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
    return params, query, body


def rest(handler: Handler, *, signed: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: faults, parameters, API key and signature, Binance error answers."""

    async def wrapped(request: web.Request) -> web.Response:
        venue = request.app[VENUE_KEY]
        now = time.time_ns()
        failing = venue.faults.http_error(now)
        if failing is not None:
            status, retry_after = failing
            if status == 429:
                return json_response(
                    {
                        "code": -1003,
                        "msg": "Too many requests; current limit of IP is 6000 requests per "
                        "minute. Please use WebSocket Streams for live updates to avoid bans.",
                    },
                    status=429,
                    headers={"Retry-After": str(max(1, round(retry_after)))},
                )
            # What a gateway in front of the matching engine answers: a bare status page.
            return web.Response(text=_REASONS.get(status, "Server Error"), status=status)
        limiter = venue.limiter
        ip = request.remote or ""
        api_key: str | None = None
        places = (request.method, request.path) in REST_ORDER_ENDPOINTS
        try:
            params, query, body = await _params(request)
            if limiter is not None:
                weights = REST_WEIGHTS[venue.dialect]
                weight = request_weight(weights.get((request.method, request.path)), params)
                limiter.charge_weight(ip, weight, venue.now_ms())
            if signed:
                api_key = _authenticate(request, params, query, body, venue.now_ms())
            reserved = places and limiter is not None and api_key is not None
            if limiter is not None and api_key is not None and places:
                limiter.reserve_order(api_key, ip, venue.now_ms())
            try:
                result = handler(venue, params, api_key)
                if isinstance(result, Awaitable):
                    result = await result
            except Exception:
                if limiter is not None and api_key is not None and reserved:
                    limiter.release_order(api_key, venue.now_ms())
                raise
        except BinanceError as exc:
            response = error_response(exc, limit_error=exc.http_status in (429, BAN_CODE))
            _usage_headers(response, venue, api_key, ip, orders=False)
            return response
        except (ValueError, KeyError, TypeError):
            return error_response(malformed_params())
        response = json_response(result)
        _usage_headers(response, venue, api_key, ip, orders=places)
        return response

    return wrapped


def public(fn: PublicHandler) -> Handler:
    """A `Handler` of an endpoint that takes no API key."""

    def handler(venue: SimVenue, params: Params, api_key: str | None) -> Any:
        del api_key
        return fn(venue, params)

    return handler


def private(fn: PrivateHandler) -> Handler:
    """A `Handler` of a signed endpoint: `rest(..., signed=True)` passes the checked key."""

    def handler(venue: SimVenue, params: Params, api_key: str | None) -> Any:
        if api_key is None:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        return fn(venue, params, api_key)

    return handler


def ping(venue: SimVenue, params: Params) -> dict[str, Any]:
    del venue, params
    return {}


def server_time(venue: SimVenue, params: Params) -> dict[str, Any]:
    del params
    return {"serverTime": venue.now_ms()}


def depth(venue: SimVenue, params: Params) -> dict[str, Any]:
    """GET depth (both dialects; USD-M adds event and transaction times)."""
    sym = venue.symbol(params.get("symbol"))
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in parameter 'limit'.") from None
    limit = max(1, min(limit, 5000))
    bids, asks, update_id = sym.engine.depth(limit)
    px = sym.fmt.px
    qty = sym.fmt.qty
    body: dict[str, Any] = {"lastUpdateId": update_id}
    if not venue.is_spot:
        now = server_time_ms()
        body["E"] = now
        body["T"] = now
    body["bids"] = [[px(p), qty(s)] for p, s in bids]
    body["asks"] = [[px(p), qty(s)] for p, s in asks]
    return body


def listen_key_endpoint(
    *, keepalive_returns_key: bool
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The user-data listen key: POST creates (or returns) the account's key, PUT keeps it
    alive, DELETE closes it. Spot answers a keepalive with `{}`, USD-M with the key."""
    gives_key = ("POST", "PUT") if keepalive_returns_key else ("POST",)

    async def endpoint(request: web.Request) -> web.Response:
        venue = request.app[VENUE_KEY]
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            return web.json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)
        if request.method in gives_key:
            return web.json_response({"listenKey": venue.new_listen_key(api_key)})
        return web.json_response({})

    return endpoint


def _authenticate(request: web.Request, params: Params, query: str, body: str, now_ms: int) -> str:
    """The API key of a signed REST request, after its signature and timestamp checks (against
    the venue's clock)."""
    api_key = request.headers.get("X-MBX-APIKEY")
    if not api_key:
        raise BinanceError(-2014, "API-key format invalid.", 401)
    payload, signature = signature_payload(query, body)
    if not verify_signature(expected_secret(api_key), payload, signature):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    check_timestamp(params, now_ms)
    return api_key


def ws_api_params(venue: SimVenue, raw: Any, *, signed: bool) -> tuple[Params, str | None]:
    """Parameters of a WS-API request; checks the signature of signed ones (Binance's rule:
    every parameter but `signature`, sorted by name, as `k=v&...`)."""
    if not isinstance(raw, dict):
        raise BinanceError(
            -1102, "Mandatory parameter 'params' was not sent, was empty/null, or malformed."
        )
    params: Params = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            params[str(key)] = "true" if value else "false"
        else:
            params[str(key)] = str(value)
    if not signed:
        return params, None
    api_key = params.get("apiKey")
    if not api_key:
        raise BinanceError(-2014, "API-key format invalid.", 401)
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    if not verify_signature(expected_secret(api_key), payload, params.get("signature")):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    check_timestamp(params, venue.now_ms())
    return params, api_key


@contextlib.asynccontextmanager
async def websocket(
    request: web.Request, *, combined: bool, kind: ConnectionKind
) -> AsyncIterator[tuple[web.WebSocketResponse, Connection]]:
    """A websocket of the venue (market streams, WS-API, user data): prepared, registered with
    the venue as `kind` and sending; dropped and closed however the handler ends."""
    venue = request.app[VENUE_KEY]
    ws = web.WebSocketResponse(compress=False, heartbeat=None)
    await ws.prepare(request)
    conn = Connection(ws, request.transport, combined=combined, faults=venue.faults)
    venue.register(conn, kind)
    conn.start()
    try:
        yield ws, conn
    finally:
        venue.unregister(conn)
        with contextlib.suppress(Exception):
            await conn.close()


async def text_frames(ws: web.WebSocketResponse) -> AsyncIterator[str]:
    """The client's text messages until it closes (other frames are passed over)."""
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            yield msg.data


def user_data_sink(
    conn: Connection,
    order_event: Callable[[VenueSymbol, ExecutionReport, int], dict[str, Any]],
    account_event: Callable[[int], dict[str, Any]],
    *,
    subscription_id: int | None = None,
) -> UserSink:
    """A venue user stream sending on `conn`: an order event per execution report, then an
    account event when the account changed (events get the time in ms); on the WS-API each
    is wrapped with its `subscription_id`."""

    def send(event: dict[str, Any], now_ns: int) -> None:
        if subscription_id is not None:
            event = {"subscriptionId": subscription_id, "event": event}
        conn.send(orjson.dumps(event), now_ns)

    def sink(
        sym: VenueSymbol, reports: list[ExecutionReport], changed: list[str], now_ns: int
    ) -> None:
        now_ms = now_ns // 1_000_000
        for report in reports:
            send(order_event(sym, report, now_ms), now_ns)
        if changed:
            send(account_event(now_ms), now_ns)

    return sink


async def _market_ws(request: web.Request) -> web.StreamResponse:
    """Market streams: `/ws`, `/ws/<n>`, `/stream`, `/public/ws`, `/market/stream?streams=...`."""
    venue = request.app[VENUE_KEY]
    async with websocket(request, combined="/stream" in request.path, kind="market_data") as (
        ws,
        conn,
    ):
        initial = request.query.get("streams")
        if initial:
            venue.streams.subscribe(conn, initial.split("/"))
        async for text in text_frames(ws):
            _handle_stream_request(venue, conn, text)
    return ws


def _handle_stream_request(venue: SimVenue, conn: Connection, text: str) -> None:
    now = time.time_ns()
    try:
        request = orjson.loads(text)
    except orjson.JSONDecodeError:
        conn.send(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected value"}}), now)
        return
    if not isinstance(request, dict):
        conn.send(orjson.dumps({"error": {"code": 3, "msg": "Invalid request"}}), now)
        return
    method = request.get("method")
    req_id = request.get("id")
    params = request.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.send(
                orjson.dumps(
                    {
                        "error": {
                            "code": 2,
                            "msg": "Invalid request: 'params' must be an array of strings",
                        },
                        "id": req_id,
                    }
                ),
                now,
            )
            return
        if method == "SUBSCRIBE":
            unknown = venue.streams.subscribe(conn, params)
            if unknown:
                conn.send(
                    orjson.dumps(
                        {
                            "error": {
                                "code": 2,
                                "msg": f"Invalid request: unknown stream {unknown[0]}",
                            },
                            "id": req_id,
                        }
                    ),
                    now,
                )
                return
        else:
            venue.streams.unsubscribe(conn, params)
        conn.send(orjson.dumps({"result": None, "id": req_id}), now)
    elif method == "LIST_SUBSCRIPTIONS":
        conn.send(orjson.dumps({"result": sorted(conn.streams), "id": req_id}), now)
    else:
        conn.send(
            orjson.dumps(
                {
                    "error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                    "id": req_id,
                }
            ),
            now,
        )


def add_stream_routes(app: web.Application, prefixes: tuple[str, ...]) -> None:
    for prefix in prefixes:
        for kind in ("ws", "stream"):
            app.router.add_get(f"{prefix}/{kind}", _market_ws)
            app.router.add_get(f"{prefix}/{kind}/{{index}}", _market_ws)


async def _admin_faults(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    try:
        spec = FaultSpec.parse(await request.json(loads=orjson.loads))
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    try:
        await venue.apply_fault(spec)
    except BinanceError as exc:
        return error_response(exc)
    return json_response({"ok": True, "kind": spec.kind, "symbol": spec.symbol})


async def _admin_state(request: web.Request) -> web.Response:
    venue = request.app[VENUE_KEY]
    depth = int(request.query.get("depth", "1000"))
    return json_response(venue.state(depth))


async def _admin_connections(request: web.Request) -> web.Response:
    return json_response(request.app[VENUE_KEY].connections())


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/admin/faults", _admin_faults)
    app.router.add_get("/admin/state", _admin_state)
    app.router.add_get("/admin/connections", _admin_connections)


def make_base_app(venue: SimVenue) -> web.Application:
    app = web.Application()
    app[VENUE_KEY] = venue
    add_admin_routes(app)
    return app
