"""Tests of api/migrations: the migrated schema is exactly the models' on SQLite and PostgreSQL,
migrations run from any working directory, concurrently, and down to nothing and back, 0005
opens the duty spans of the riders on duty, and 0007 opens a span since ever for each link of a
rider to a shop."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel, select

from api.db import create_db_engine
from api.migrations import (
    alembic_config,
    current_revision,
    downgrade,
    main,
    schema_differences,
    upgrade,
)
from api.models import RiderDutySpan, RiderShopSpan, UTCDateTime
from tests.api.conftest import BACKENDS

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

# The tables of shops and riders as the early revisions made them (the columns without defaults).
SHOPS = sa.table(
    "shops",
    *(sa.column(name) for name in ("name", "lat", "lon", "circle_walk_min", "promise_min")),
    sa.column("require_pin"),
    sa.column("id", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
)
RIDERS = sa.table(
    "riders",
    *(sa.column(name) for name in ("name", "mode", "capacity_bags", "on_duty")),
    sa.column("id", sa.Uuid()),
    sa.column("shop_id", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
)


def shop_row(shop_id: uuid.UUID, created_at: datetime) -> dict[str, Any]:
    return {
        "name": "Wanrun 24h",
        "lat": 34.6,
        "lon": 119.2,
        "circle_walk_min": 15,
        "promise_min": 30,
        "require_pin": False,
        "id": shop_id,
        "created_at": created_at,
    }


def rider_row(
    rider_id: uuid.UUID, shop_id: uuid.UUID, created_at: datetime, *, on_duty: bool = False
) -> dict[str, Any]:
    return {
        "name": "Li Wei",
        "mode": "ebike",
        "capacity_bags": 6,
        "on_duty": on_duty,
        "id": rider_id,
        "shop_id": shop_id,
        "created_at": created_at,
    }


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path}/empty.db")
        yield engine
        engine.dispose()
        return
    shared: Engine = request.getfixturevalue("postgres_engine")
    schema = f"qh_mig_{secrets.token_hex(6)}"
    url = shared.url.set(query={"options": f"-csearch_path={schema}"})
    with shared.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_db_engine(url.render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with shared.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_there_is_one_head() -> None:
    """The revisions form one line (no branches to merge)."""
    assert HEAD is not None


def test_migrated_schema_matches_the_models(empty_engine: Engine) -> None:
    """After the migrations, autogenerate finds nothing to change: a model change without a
    migration fails here."""
    upgrade(empty_engine)
    assert current_revision(empty_engine) == HEAD
    assert schema_differences(empty_engine) == []
    assert table_names(empty_engine) == set(SQLModel.metadata.tables) | {"alembic_version"}


def test_test_database_is_at_head(database_url: str) -> None:
    """The database the API tests use (migrated by the fixtures or the app) matches the models."""
    engine = create_db_engine(database_url)
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert schema_differences(engine) == []
    engine.dispose()


def test_a_drifted_schema_is_detected(empty_engine: Engine) -> None:
    """An index missing from the database shows up as a difference."""
    upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_orders_updated_at"))
    differences = schema_differences(empty_engine)
    assert [difference[0] for difference in differences] == ["add_index"]


def test_upgrade_is_idempotent_and_reversible(empty_engine: Engine) -> None:
    """Upgrading twice changes nothing; downgrading to base leaves only Alembic's table."""
    upgrade(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == HEAD
    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert table_names(empty_engine) == {"alembic_version"}
    upgrade(empty_engine)
    assert schema_differences(empty_engine) == []


def test_riders_on_duty_at_0005_get_an_open_duty_span(empty_engine: Engine) -> None:
    """Revision 0005 opens a duty span from the upgrade on for each rider on duty then, none for
    a rider off duty: going off duty later has a span to close."""
    upgrade(empty_engine, "0004")
    shop_id, on_id, off_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    before = datetime.now(UTC).replace(microsecond=0)
    with empty_engine.begin() as connection:
        connection.execute(SHOPS.insert(), [shop_row(shop_id, before)])
        connection.execute(
            RIDERS.insert(),
            [
                rider_row(rider_id, shop_id, before, on_duty=on_duty)
                for rider_id, on_duty in ((on_id, True), (off_id, False))
            ],
        )
    upgrade(empty_engine)
    with Session(empty_engine) as session:
        spans = session.exec(select(RiderDutySpan)).all()
    assert [(span.rider_id, span.end_at) for span in spans] == [(on_id, None)]
    assert before <= spans[0].start_at <= datetime.now(UTC)


def test_links_at_0007_get_a_link_span_since_ever(empty_engine: Engine) -> None:
    """Revision 0007 opens a span linked since ever (``linked_at`` null) for each link of a rider
    to a shop, its home shop and another: the shops' past KPIs stay as they were, and unlinking
    later has a span to close."""
    upgrade(empty_engine, "0006")
    home_id, other_id, first_id, second_id = (uuid.uuid4() for _ in range(4))
    created = datetime(2026, 11, 1, tzinfo=UTC)
    pairs = [(first_id, home_id), (first_id, other_id), (second_id, home_id)]
    links = sa.table(
        "rider_shops",
        sa.column("rider_id", sa.Uuid()),
        sa.column("shop_id", sa.Uuid()),
        sa.column("created_at", UTCDateTime()),
    )
    with empty_engine.begin() as connection:
        connection.execute(
            SHOPS.insert(), [shop_row(shop_id, created) for shop_id in (home_id, other_id)]
        )
        connection.execute(
            RIDERS.insert(),
            [rider_row(rider_id, home_id, created) for rider_id in (first_id, second_id)],
        )
        connection.execute(
            links.insert(),
            [
                {"rider_id": rider_id, "shop_id": shop_id, "created_at": created}
                for rider_id, shop_id in pairs
            ],
        )
    upgrade(empty_engine)
    with Session(empty_engine) as session:
        spans = session.exec(select(RiderShopSpan)).all()
    assert len(spans) == len(pairs)
    assert {(span.rider_id, span.shop_id, span.linked_at, span.unlinked_at) for span in spans} == {
        (rider_id, shop_id, None, None) for rider_id, shop_id in pairs
    }


def test_concurrent_upgrades_both_succeed(empty_engine: Engine) -> None:
    """Two processes starting at once on an empty database: one migrates, the other waits."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(empty_engine)
        except BaseException as error:  # pragma: no cover - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current_revision(empty_engine) == HEAD


def test_migrations_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from an unrelated folder, the migrations are found by package path."""
    monkeypatch.chdir(tmp_path)
    engine = create_db_engine("sqlite:///elsewhere.db")
    upgrade(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()
    assert (tmp_path / "elsewhere.db").is_file()


def test_cli_check_and_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m api.migrations check`` passes on the revisions; ``upgrade --url`` migrates."""
    assert main(["check"]) == 0
    assert main(["upgrade", "--url", f"sqlite:///{tmp_path}/cli.db"]) == 0
    assert capsys.readouterr().out.strip() == f"at revision {HEAD}"
