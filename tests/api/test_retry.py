"""Tests of api/retry.py: a route writing in its own session runs again when it lost a race."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

import api.routes.riders
from api.group_commit import BATCH_ATTEMPTS
from tests.api.factories import ShopHandle, assert_error, count_rows, rider_body

SHIFT = ["2026-11-29T18:00:00+08:00", "2026-11-29T22:00:00+08:00"]


def lost_race_error(sqlstate: str = "40P01") -> OperationalError:
    """What SQLAlchemy raises when PostgreSQL aborts a transaction (a deadlock by default)."""
    aborted = Exception("deadlock detected")
    aborted.sqlstate = sqlstate  # type: ignore[attr-defined]  # as psycopg's errors carry it
    return OperationalError("DELETE FROM rider_shifts", {}, aborted)


def store_losing(
    monkeypatch: pytest.MonkeyPatch, losses: int, sqlstate: str = "40P01"
) -> list[int]:
    """Make the PATCH's shift store write, then lose its transaction ``losses`` times."""
    runs: list[int] = []
    store = api.routes.riders.store_shifts_from

    def losing(*args: Any) -> None:
        runs.append(len(runs))
        store(*args)
        if len(runs) <= losses:
            raise lost_race_error(sqlstate)

    monkeypatch.setattr(api.routes.riders, "store_shifts_from", losing)
    return runs


def patch_shifts(client: TestClient, shop: ShopHandle) -> Any:
    rider = client.post("/v1/riders", json=rider_body(shifts=[]), headers=shop.headers).json()
    return client.patch(
        f"/v1/riders/{rider['id']}", json={"shifts": [SHIFT], "name": "Li"}, headers=shop.headers
    )


def test_a_patch_that_lost_a_deadlock_runs_again_and_stores_once(
    client: TestClient, shop: ShopHandle, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = store_losing(monkeypatch, losses=2)
    response = patch_shifts(client, shop)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Li"
    assert len(runs) == 3
    assert count_rows(engine, "rider_shifts") == 1  # the lost runs' rows were rolled back
    assert count_rows(engine, "riders", "shifts_version = 1") == 1


def test_a_route_that_keeps_losing_answers_503_with_nothing_stored(
    client: TestClient, shop: ShopHandle, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = store_losing(monkeypatch, losses=BATCH_ATTEMPTS, sqlstate="40001")
    assert_error(patch_shifts(client, shop), 503, "database_unavailable")
    assert len(runs) == BATCH_ATTEMPTS
    assert count_rows(engine, "rider_shifts") == 0
    assert count_rows(engine, "riders", "name = 'Li'") == 0


def test_other_database_errors_are_not_run_again(
    client: TestClient, shop: ShopHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = store_losing(monkeypatch, losses=1, sqlstate="08006")  # connection failure
    assert_error(patch_shifts(client, shop), 503, "database_unavailable")
    assert len(runs) == 1
