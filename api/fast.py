"""Fast paths in front of FastAPI for the hot routes (``QuarterhourApp``, ``create_app``'s app).

FastAPI's per-request machinery (the middleware stack, matching the path against every route,
solving the dependency graph, validating a sync route's return value in the thread pool) cost
about 1 ms of the GIL a request under ``make load`` (py-spy, session 6): more than the own work
of most hot routes. ``QuarterhourApp`` answers a well-formed request of these routes itself, by
the functions the routes call, and hands everything else to FastAPI unchanged:

- ``POST /v1/orders`` (``take_intake``), ``GET /v1/orders/{id}`` (one Core read),
  ``POST /v1/orders/{id}/deliver`` (``deliver_work``), ``GET /v1/riders/{id}/trip``
  (``api.trip_read``, on the loop), ``POST /v1/riders/{id}/location`` (``location_work``),
  ``POST /v1/trips/{id}/pickup`` (``pickup_work``), ``POST /v1/webhooks/{source}``
  (``take_event``).

A request is served here only when what FastAPI checks before the route runs is well formed:
the path's id a canonical (lower-case, hyphenated) UUID, a declared ``Content-Length`` within
the body limit (or no body at all), and where the route takes a JSON body, ``Content-Type:
application/json``, a JSON object that parses and validates with the route's own body field
(the same pydantic adapter and call as FastAPI's). Anything else goes to FastAPI, the body
replayed, which answers it as before: every 4xx about the request's form is FastAPI's. The
shop's key is checked by the same dependency object (``get_current_shop_read``), before the
body is validated, as FastAPI does; an exception of the route's work is answered by the app's
own exception handlers. The reply is the route's response field's validation and JSON dump,
with the route's status code: the bytes FastAPI would send (tests compare both paths).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.types import Receive, Scope, Send

from api import trip_read
from api.db import run_read
from api.deps import engine_of, get_current_shop_read, group_commit_of, now_of
from api.driver_select import DriverSelect
from api.errors import not_found, replaying
from api.intake import ORDER_BY_ID
from api.models import OrderPublic, Shop

logger = logging.getLogger("api.fast")

UUID_PATTERN = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
# ``SOURCE_PATTERN``'s sources except ``shopify``, which has a route of its own.
SOURCE_PATH_PATTERN = r"((?!shopify$)[a-z0-9][a-z0-9_.-]{0,31})"
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")  # ``IdempotencyKeyHeader``'s constraints


class Fallback(Exception):
    """The request is not one the fast path answers as FastAPI would: FastAPI answers it."""


class _Disconnected(Exception):
    """The client went away before its body was read: nobody to answer."""


@dataclass(frozen=True)
class Call:
    """One request on a fast path: the request, the path's parameters, the whole body."""

    request: Request
    params: tuple[str, ...]
    body: bytes

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or ``Fallback`` (another content type, not JSON...)."""
        if self.request.headers.get("content-type") != "application/json":
            raise Fallback
        try:
            data = json.loads(self.body)
        except Exception:  # not JSON, not UTF-8, nested too deep: FastAPI words the error
            raise Fallback from None
        if not isinstance(data, dict):
            raise Fallback
        return data

    def param_uuid(self, index: int = 0) -> uuid.UUID:
        return uuid.UUID(self.params[index])


Handler = Callable[[Call, APIRoute], Awaitable[Any]]


@dataclass(frozen=True)
class FastRoute:
    """A hot route: ``handler`` answers it, as ``route`` (FastAPI's) would."""

    method: str
    pattern: re.Pattern[str]
    route: APIRoute
    handler: Handler


def validated_body(route: APIRoute, data: dict[str, Any]) -> Any:
    """``data`` validated by ``route``'s body field, as FastAPI does; ``Fallback`` if invalid."""
    field = route.body_field
    if field is None:  # pragma: no cover - only routes with a body call this
        raise TypeError(f"{route.path} takes no body")
    value, errors = field.validate(data, {}, loc=("body",))
    if errors:
        raise Fallback
    return value


def reply(route: APIRoute, value: Any) -> Response:
    """``value`` as FastAPI answers it for ``route``: its response field's validation and JSON
    dump (FastAPI's ``serialize_response`` with ``dump_json``), the route's status code."""
    field = route.response_field
    if field is None:  # pragma: no cover - every fast route has a response model
        raise TypeError(f"{route.path} has no response model")
    validated, errors = field.validate(value, {}, loc=("response",))
    if errors:  # pragma: no cover - the value is of the route's own model
        raise TypeError(f"{route.path}: the reply does not validate: {errors}")
    content = field.serialize_json(
        validated,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    return Response(content, route.status_code or 200, media_type="application/json")


# --- the handlers -------------------------------------------------------------------------------


async def create_order(call: Call, route: APIRoute) -> Response:
    from api.routes.orders import take_intake  # api.routes.orders imports this module's users

    data = call.json_object()
    key = call.request.headers.get("idempotency-key")
    if key is not None and IDEMPOTENCY_KEY_RE.fullmatch(key) is None:
        raise Fallback
    shop = await get_current_shop_read(call.request)
    order_in = validated_body(route, data)
    return await take_intake(call.request, shop, order_in, key)


# ``GET /v1/orders/{id}``'s one read, by the driver on SQLite (``api.driver_select``)
ORDER_READ = DriverSelect(ORDER_BY_ID)


def _order_public(engine: Engine, shop: Shop, order_id: uuid.UUID) -> OrderPublic:
    row = ORDER_READ.first(engine, {"order_id": order_id})
    if row is None or row["shop_id"] != shop.id:
        raise not_found("order")
    return OrderPublic.model_validate(row)


async def read_order(call: Call, route: APIRoute) -> BaseModel:
    shop = await get_current_shop_read(call.request)
    order_id = call.param_uuid()
    engine = engine_of(call.request)
    order: OrderPublic = await run_read(
        engine, lambda engine: _order_public(engine, shop, order_id)
    )
    return order


async def deliver_order(call: Call, route: APIRoute) -> BaseModel:
    from api.routes.orders import deliver_work

    data = call.json_object()
    shop = await get_current_shop_read(call.request)
    deliver_in = validated_body(route, data)
    pin = deliver_in.pin if deliver_in is not None else None
    work = deliver_work(shop, call.param_uuid(), pin, now_of(call.request))
    return await group_commit_of(call.request.app).run(work)


async def read_rider_trip(call: Call, route: APIRoute) -> BaseModel:
    shop = await get_current_shop_read(call.request)
    rider_id = call.param_uuid()

    def read(engine: Engine) -> BaseModel:
        with engine.connect() as connection:
            return trip_read.read_rider_trip(connection, shop.id, rider_id)

    trip: BaseModel = await run_read(engine_of(call.request), read)
    return trip


async def report_location(call: Call, route: APIRoute) -> BaseModel:
    from api.routes.riders import location_work

    data = call.json_object()
    shop = await get_current_shop_read(call.request)
    location_in = validated_body(route, data)
    work = location_work(shop, call.param_uuid(), location_in, now_of(call.request))
    return await group_commit_of(call.request.app).run(work)


async def pick_up_trip(call: Call, route: APIRoute) -> BaseModel:
    from api.routes.trips import pickup_work

    shop = await get_current_shop_read(call.request)
    work = pickup_work(shop, call.param_uuid(), now_of(call.request))
    return await group_commit_of(call.request.app).run(work)


async def receive_event(call: Call, route: APIRoute) -> BaseModel:
    from api.routes.webhooks import SIGNATURE_HEADER, take_event

    request = call.request
    return await take_event(
        call.params[0],
        call.body,
        request.headers.get(SIGNATURE_HEADER),
        engine_of(request),
        group_commit_of(request.app),
        request.app.state.settings,
        now_of(request),
    )


# (method, the route's path in its router (under /v1), the whole path's pattern, handler)
FAST_ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("POST", "/orders", "/v1/orders", create_order),
    ("GET", "/orders/{order_id}", rf"/v1/orders/{UUID_PATTERN}", read_order),
    (
        "POST",
        "/orders/{order_id}/deliver",
        rf"/v1/orders/{UUID_PATTERN}/deliver",
        deliver_order,
    ),
    ("GET", "/riders/{rider_id}/trip", rf"/v1/riders/{UUID_PATTERN}/trip", read_rider_trip),
    (
        "POST",
        "/riders/{rider_id}/location",
        rf"/v1/riders/{UUID_PATTERN}/location",
        report_location,
    ),
    ("POST", "/trips/{trip_id}/pickup", rf"/v1/trips/{UUID_PATTERN}/pickup", pick_up_trip),
    ("POST", "/webhooks/{source}", rf"/v1/webhooks/{SOURCE_PATH_PATTERN}", receive_event),
)


def _api_route(routers: list[APIRouter], method: str, path: str) -> APIRoute:
    for route in (route for router in routers for route in router.routes):
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no route {method} {path}")


class QuarterhourApp(FastAPI):
    """FastAPI with the fast paths of this module in front (``install_fast_paths``); with
    ``fast_paths_enabled`` false (tests comparing both paths) every request goes to FastAPI."""

    fast_paths_enabled: bool = True
    max_body_bytes: int = 0
    _fast_routes: dict[str, list[FastRoute]]

    def install_fast_paths(self, routers: list[APIRouter], max_body_bytes: int) -> None:
        """Serve ``FAST_ROUTES`` here; ``routers``: those included under ``/v1``."""
        self.max_body_bytes = max_body_bytes
        self._fast_routes = {}
        for method, path, pattern, handler in FAST_ROUTES:
            route = FastRoute(
                method, re.compile(pattern), _api_route(routers, method, path), handler
            )
            self._fast_routes.setdefault(method, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fast_paths_enabled:
            for fast_route in getattr(self, "_fast_routes", {}).get(scope["method"], ()):
                match = fast_route.pattern.fullmatch(scope["path"])
                if match is not None:
                    await self._serve(fast_route, match.groups(), scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _serve(
        self,
        fast_route: FastRoute,
        params: tuple[str, ...],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        try:
            body = await self._read_body(scope, receive)
        except _Disconnected:
            return
        if body is None:  # no declared length, or over the limit: FastAPI (BodySizeLimit)
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope)
        try:
            value = await fast_route.handler(Call(request, params, body), fast_route.route)
        except Fallback:
            await super().__call__(scope, replaying(body, receive), send)
            return
        except Exception as error:
            handled, response = await self._handle_error(request, error)
            await response(scope, receive, send)
            if not handled:  # as Starlette's ServerErrorMiddleware: the server logs it too
                raise
            return
        response = value if isinstance(value, Response) else reply(fast_route.route, value)
        await response(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body when its declared length is within the limit (``b""`` for a request
        that declares none and is not chunked); ``None`` when FastAPI must see the request
        (nothing has been read then)."""
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if declared is not None:
                    return None
                declared = value
            elif name == b"transfer-encoding":
                return None
        if declared is None:
            return b""
        if not declared.isdigit() or int(declared) > self.max_body_bytes:
            return None
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle_error(self, request: Request, error: Exception) -> tuple[bool, Response]:
        """The app's own exception handler's answer to ``error``, looked up by its class's MRO
        as Starlette does; whether a handler of its class (not ``Exception``'s, the 500 of
        an unexpected error) answered it."""
        for cls in type(error).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                response = await handler(request, error)  # type: ignore[misc]
                if not isinstance(response, Response):  # pragma: no cover
                    raise TypeError("an exception handler must answer a Response")
                return cls is not Exception, response
        raise error  # pragma: no cover - ``Exception`` has a handler
