"""Outbound webhooks reach public hosts only (api/netguard.py): private, loopback and
link-local targets are refused at registration and at delivery, and no redirect is followed."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.config import Settings
from api.main import create_app
from api.netguard import address_problem, url_problem
from api.outbox import Claim, send
from tests.api.conftest import create_shop
from tests.api.factories import ADMIN_TOKEN, START, FakeClock, assert_error, count_rows

NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # a cloud's metadata service
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "192.0.2.1",  # documentation
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "203.0.114.1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_loopback_link_local_and_reserved_addresses_are_not_public(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:9/hook", True),
        ("http://[::1]/hook", True),
        ("https://169.254.169.254/latest/meta-data", True),
        ("http://localhost:8000/x", True),
        ("http://LOCALHOST./x", True),
        ("http://api.localhost/x", True),
        ("https://8.8.8.8/hook", False),
        ("https://hooks.example.com/quarterhour", False),  # names are checked at delivery
    ],
)
def test_registration_refuses_plainly_local_hosts(url: str, refused: bool) -> None:
    assert (url_problem(url) is not None) is refused


@pytest.fixture
def strict_client(tmp_path: Any) -> Iterator[TestClient]:
    """An app with the default policy: webhooks to public hosts only."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'strict.db'}",
        admin_token=SecretStr(ADMIN_TOKEN),
        dispatch_enabled=False,
        webhook_delivery_enabled=False,
    )
    assert settings.webhook_allow_private_urls is False
    with TestClient(create_app(settings, clock=FakeClock())) as client:
        yield client


def test_an_endpoint_on_a_private_host_gets_422_and_nothing_is_stored(
    strict_client: TestClient,
) -> None:
    shop = create_shop(strict_client)
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.7/hook", "http://localhost/hook"):
        response = strict_client.post(
            "/v1/webhook-endpoints",
            json={"url": url, "event_types": ["order.accepted"]},
            headers=shop.headers,
        )
        assert_error(response, 422, "url_not_public")
        assert "public" in response.json()["message"]
    engine = strict_client.app.state.engine  # type: ignore[attr-defined]
    assert count_rows(engine, "webhook_endpoints") == 0
    created = strict_client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/qh", "event_types": ["order.accepted"]},
        headers=shop.headers,
    )
    assert created.status_code == 201, created.text


class Redirecting:
    """A local server that answers every POST with ``status`` (a redirect to /elsewhere)."""

    def __init__(self, status: int) -> None:
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.paths.append(self.path)
                self.send_response(status if self.path == "/hook" else 200)
                self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *_args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server() -> Iterator[Redirecting]:
    running = Redirecting(200)
    yield running
    running.close()


def _claim(url: str) -> Claim:
    return Claim(
        delivery_id=uuid.uuid4(),
        lease_token="t",
        attempt=1,
        endpoint_id=uuid.uuid4(),
        url=url,
        secret="whsec_test",
        event_id="evt_1",
        event_type="order.accepted",
        body=b"{}",
    )


def _now() -> datetime:
    return START


def test_delivery_to_a_loopback_address_fails_without_connecting(server: Redirecting) -> None:
    url = f"http://127.0.0.1:{server.port}/hook"
    refused = send(_claim(url), _now(), 5.0)
    assert not refused.ok and refused.status_code is None
    assert refused.error is not None and "not a public host: 127.0.0.1" in refused.error
    assert "loopback" in refused.error
    assert server.paths == []
    allowed = send(_claim(url), _now(), 5.0, allow_private=True)
    assert allowed.ok and server.paths == ["/hook"]


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    server: Redirecting, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public-looking name that resolves (or is re-pointed) to loopback gets nothing."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        return real_getaddrinfo(
            "127.0.0.1" if host == "hooks.example.com" else host, *args, **kwargs
        )

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    outcome = send(_claim(f"http://hooks.example.com:{server.port}/hook"), _now(), 5.0)
    assert not outcome.ok
    assert outcome.error is not None and "not a public host: hooks.example.com" in outcome.error
    assert server.paths == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failed_attempt_not_followed(status: int) -> None:
    server = Redirecting(status)
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        outcome = send(_claim(url), _now(), 5.0, allow_private=True)
    finally:
        server.close()
    assert outcome.status_code == status and not outcome.ok
    assert server.paths == ["/hook"]
