"""Dependencies of the routes, as ``Annotated`` aliases (``SessionDep``, ``CurrentShopDep``)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.base import SecurityBase
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, func, select

from api.config import Settings
from api.db import is_sqlite, run_read, writer
from api.errors import AppError, not_found
from api.group_commit import GroupCommit
from api.key_cache import cached_shop, read_shop
from api.models import ApiKey, Shop
from api.security import hash_api_key, tokens_equal

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(auto_error=False, description="A shop API key, or the admin token.")


# The dependencies that only look at app.state are ``async def``: FastAPI runs a plain ``def``
# dependency in its thread pool, a hop that under load costs more than the lookup itself.


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    """The app's engine."""
    return engine_of(request)


def _sqlite_write_turns(app: FastAPI) -> asyncio.Lock:
    """The lock the write requests of this app take turns on, made for the running loop."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = getattr(
        app.state, "sqlite_write_turns", None
    )
    if held is None or held[0] is not loop:
        held = (loop, asyncio.Lock())
        app.state.sqlite_write_turns = held
    return held[1]


def group_commit_of(app: FastAPI) -> GroupCommit:
    """The app's group writer on the running loop (``api.group_commit``); on SQLite it takes
    the same write turns as every other write request. Also the dispatch loop's writer."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, GroupCommit] | None = getattr(
        app.state, "group_commit", None
    )
    if held is None or held[0] is not loop:
        engine: Engine = app.state.engine
        turns = _sqlite_write_turns(app) if is_sqlite(engine) else None
        held = (loop, GroupCommit(engine, turns))
        app.state.group_commit = held
    return held[1]


async def get_group_commit(request: Request) -> GroupCommit:
    """The app's group writer on the running loop (``group_commit_of``)."""
    return group_commit_of(request.app)


async def take_write_turn(request: Request) -> AsyncIterator[None]:
    """On SQLite, one write request of the process at a time, queued on the event loop.

    SQLite has one writer, and a write request holds the write lock (``BEGIN IMMEDIATE``) from
    its first statement, in a dependency, to its commit, in the route: several hops through the
    thread pool. Without turns, 40 write requests (the pool's size) waiting in ``busy_timeout``
    for the lock hold every thread while the holder waits for one: no progress until their
    timeouts fail them all with 503. Waiting here holds no thread and no connection.
    """
    if request.method in READ_METHODS or not is_sqlite(engine_of(request)):
        yield
        return
    async with _sqlite_write_turns(request.app):
        yield


def get_session(
    request: Request, _turn: Annotated[None, Depends(take_write_turn)]
) -> Iterator[Session]:
    """One session per request; a request that may write runs in a write transaction."""
    engine = engine_of(request)
    if request.method not in READ_METHODS:
        engine = writer(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session


def now_of(request: Request) -> datetime:
    """The service's clock (timezone-aware UTC); tests may replace ``app.state.clock``."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock().astimezone(UTC)


async def get_now(request: Request) -> datetime:
    """The service's clock (``now_of``)."""
    return now_of(request)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
GroupCommitDep = Annotated[GroupCommit, Depends(get_group_commit)]
NowDep = Annotated[datetime, Depends(get_now)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(message: str) -> AppError:
    return AppError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def require_admin(settings: SettingsDep, credentials: CredentialsDep) -> None:
    """The request carries the admin token (``QUARTERHOUR_ADMIN_TOKEN``)."""
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise _unauthorized("admin operations are disabled: QUARTERHOUR_ADMIN_TOKEN is not set")
    if credentials is None:
        raise _unauthorized("missing Authorization: Bearer <admin token>")
    if not tokens_equal(credentials.credentials, settings.admin_token.get_secret_value()):
        raise _unauthorized("invalid admin token")


def get_current_shop(session: SessionDep, credentials: CredentialsDep) -> Shop:
    """The shop whose live API key the request carries."""
    return shop_of_key(session, credentials)


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>``, or ``None``: what
    ``bearer`` (FastAPI's ``HTTPBearer`` without auto error) reads, without building its
    credentials model on this hot path (tested equal)."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not (scheme and token) or scheme.lower() != "bearer":
        return None
    return token


class ShopOfKey(SecurityBase):
    """``get_current_shop`` without a write session (``CurrentShopReadDep``): from the key cache
    (``api.key_cache``), or on a miss in a short read transaction of its own, ended before the
    route runs (for routes that write through ``GroupCommit``: a request waiting for its batch
    holds no connection; ``api.key_cache.read_shop``, on the event loop on SQLite and in a
    thread otherwise, ``api.db.run_read``). The shop is built from its row, in no session, and
    shared: never add it to a session.

    A security scheme of its own, documented as ``bearer`` is (the same OpenAPI security), so
    that it is one dependency that reads the header itself: FastAPI solves each dependency
    anew per request, and this one used to be three (itself, ``bearer`` and ``get_engine``).
    """

    def __init__(self) -> None:
        self.model = bearer.model
        self.scheme_name = bearer.scheme_name

    async def __call__(self, request: Request) -> Shop:
        key = bearer_token(request)
        if key is None:
            raise _unauthorized("missing Authorization: Bearer <shop API key>")
        key_sha256 = hash_api_key(key)
        shop = cached_shop(key_sha256)
        if shop is None:
            shop = await run_read(
                engine_of(request), functools.partial(read_shop, key_sha256=key_sha256)
            )
            if shop is None:
                raise _unauthorized("invalid or revoked API key")
        return shop


get_current_shop_read = ShopOfKey()


def shop_of_key(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Shop:
    """The shop whose live API key ``credentials`` carry; 401 otherwise."""
    if credentials is None:
        raise _unauthorized("missing Authorization: Bearer <shop API key>")
    key_sha256 = hash_api_key(credentials.credentials)
    api_key = session.exec(select(ApiKey).where(ApiKey.key_sha256 == key_sha256)).first()
    if api_key is None or api_key.revoked_at is not None:
        raise _unauthorized("invalid or revoked API key")
    shop = session.get(Shop, api_key.shop_id)
    if shop is None:  # pragma: no cover - the foreign key forbids it
        raise _unauthorized("invalid or revoked API key")
    return shop


def _is_admin(settings: Settings, credentials: HTTPAuthorizationCredentials) -> bool:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    return bool(token) and tokens_equal(credentials.credentials, token)


def get_managed_shop(
    shop_id: uuid.UUID, session: SessionDep, settings: SettingsDep, credentials: CredentialsDep
) -> Shop:
    """The shop ``shop_id`` when the request carries the admin token or a live key of that shop.

    Another shop's key gets 404, as if the shop did not exist.
    """
    if credentials is not None and _is_admin(settings, credentials):
        shop = session.get(Shop, shop_id)
    else:
        shop = get_current_shop(session, credentials)
    if shop is None or shop.id != shop_id:
        raise not_found("shop")
    return shop


AdminDep = Depends(require_admin)
CurrentShopDep = Annotated[Shop, Depends(get_current_shop)]
CurrentShopReadDep = Annotated[Shop, Depends(get_current_shop_read)]
ManagedShopDep = Annotated[Shop, Depends(get_managed_shop)]


class _ShopOwned(Protocol):
    shop_id: uuid.UUID


OwnedT = TypeVar("OwnedT", bound=_ShopOwned)


def get_owned(
    session: Session,
    model: type[OwnedT],
    shop: Shop,
    object_id: uuid.UUID,
    what: str,
    *,
    lock: bool = False,
) -> OwnedT:
    """The ``model`` row ``object_id`` of ``shop``; 404 when missing or another shop's."""
    row = session.get(model, object_id, with_for_update=lock)
    if row is None or row.shop_id != shop.id:
        raise not_found(what)
    return row


RowT = TypeVar("RowT", bound=SQLModel)


def changes_of(update: SQLModel) -> dict[str, Any]:
    """The fields a PATCH body sets, by name; 422 for one set to null (leave it out instead)."""
    changes = update.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise AppError(422, "validation_error", f"{name}: may be left out, not null")
    return changes


def fetch_page(
    session: Session,
    model: type[RowT],
    conditions: list[Any],
    order_by: tuple[Any, ...],
    *,
    skip: int,
    limit: int,
) -> tuple[list[RowT], int]:
    """One page of ``model`` rows matching ``conditions``, and how many match in all."""
    count = session.exec(select(func.count()).select_from(model).where(*conditions)).one()
    rows = session.exec(
        select(model).where(*conditions).order_by(*order_by).offset(skip).limit(limit)
    ).all()
    return list(rows), int(count)
