"""Tests of api/main.py: the app's health check, OpenAPI document and documented error bodies."""

from __future__ import annotations

from fastapi.testclient import TestClient

V1_PATHS = {
    "/v1/shops",
    "/v1/shops/{shop_id}",
    "/v1/shops/{shop_id}/keys",
    "/v1/shops/{shop_id}/keys/{key_id}",
    "/v1/quotes",
    "/v1/orders",
    "/v1/orders/{order_id}",
    "/v1/orders/{order_id}/cancel",
    "/v1/orders/{order_id}/events",
    "/v1/riders",
    "/v1/riders/{rider_id}",
    "/v1/riders/{rider_id}/duty",
    "/v1/riders/{rider_id}/location",
}


def test_healthz(client: TestClient) -> None:
    """GET /healthz answers ok when the database does."""
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    """/openapi.json lists the /v1 resources; /docs serves the interactive page."""
    document = client.get("/openapi.json").json()
    assert set(document["paths"]) >= V1_PATHS
    assert client.get("/docs").status_code == 200


def test_documented_errors_are_code_and_message(client: TestClient) -> None:
    """Every 4xx/5xx response in the OpenAPI document has the {code, message} schema."""
    document = client.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorPublic"
    assert set(document["components"]["schemas"]["ErrorPublic"]["required"]) == {"code", "message"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": error_ref}, (method, path, status)


def test_the_start_up_heap_is_frozen(client: TestClient) -> None:
    """Once the app has started, what the start-up made is out of the collector's sight (its
    full collections under load then walk only the requests' objects)."""
    import gc

    assert gc.get_freeze_count() > 0
