"""Fixtures of the API tests: an app per test on a temporary SQLite file, and the same tests on
the PostgreSQL server at 127.0.0.1:5432 (database ``test``, marker ``db``) in a schema made for
this test session and dropped after it."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from api.config import Settings
from api.db import create_db_engine
from api.main import create_app
from api.migrations import upgrade
from tests.api.factories import ADMIN, ADMIN_TOKEN, FakeClock, ShopHandle, shop_body

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
PG_USERS = ("postgres", "root")

# What the ``make_shop`` fixture is: call it to create a shop through the API.
Factory = Callable[..., ShopHandle]


def _find_postgres_user() -> str:
    """A user the server lets in, or a skip when nothing listens on the port."""
    import psycopg

    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=2).close()
    except OSError as error:
        pytest.skip(f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT}: {error}")
    failures = []
    for user in PG_USERS:
        try:
            psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, connect_timeout=5
            ).close()
        except psycopg.OperationalError as error:
            failures.append(f"{user}: {error}")
            continue
        return user
    pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} refused every user: {failures}")


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """An engine on a schema of its own in database ``test``; the schema is dropped at the end."""
    user = _find_postgres_user()
    schema = f"qh_test_{secrets.token_hex(6)}"
    admin = create_db_engine(f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}")
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
        f"?options=-csearch_path%3D{schema}"
    )
    engine = create_db_engine(url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.db)]


def open_database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A fresh SQLite file under ``directory``, or the PostgreSQL test schema emptied after use."""
    if request.param == "sqlite":
        yield f"sqlite:///{directory}/var/quarterhour.db"
        return
    engine: Engine = request.getfixturevalue("postgres_engine")
    yield engine.url.render_as_string(hide_password=False)
    # DELETE, children first: on a few rows much cheaper than TRUNCATE, which rewrites files.
    with engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database of one test."""
    yield from open_database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database shared by the tests of one module (for tests that never change any row)."""
    yield from open_database(request, tmp_path_factory.mktemp("module-db"))


def start_client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        admin_token=SecretStr(ADMIN_TOKEN),
        dispatch_enabled=False,
        webhook_delivery_enabled=False,
        webhook_allow_private_urls=True,  # the receivers of the tests are on loopback
    )
    with TestClient(create_app(settings, clock=FakeClock())) as client:
        yield client


@pytest.fixture(scope="module")
def module_client(module_database_url: str) -> Iterator[TestClient]:
    """A started app shared by the tests of one module."""
    yield from start_client(module_database_url)


def create_shop(client: TestClient, **overrides: Any) -> ShopHandle:
    """Create a shop through the API (admin token), with its first key."""
    response = client.post("/v1/shops", json=shop_body(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return ShopHandle(id=body["shop"]["id"], key=body["api_key"]["key"], body=body)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=SecretStr(ADMIN_TOKEN),
        dispatch_enabled=False,
        webhook_delivery_enabled=False,
        webhook_allow_private_urls=True,  # the receivers of the tests are on loopback
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> FastAPI:
    return create_app(settings, clock=clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of a started app; any server error raises in the test (never a silent 500)."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def engine(app: FastAPI, client: TestClient) -> Engine:
    """The app's own engine, to look at rows directly."""
    engine: Engine = app.state.engine
    return engine


@pytest.fixture
def make_shop(client: TestClient) -> Factory:
    """Create shops through the API (admin token), each with its first key."""

    def make(**overrides: Any) -> ShopHandle:
        return create_shop(client, **overrides)

    return make


@pytest.fixture
def shop(make_shop: Factory) -> ShopHandle:
    return make_shop()
