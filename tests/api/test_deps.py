"""Tests of api/deps.py: the bearer token read on the hot paths."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from api.deps import bearer, bearer_token


def _request(authorization: bytes | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization)]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"Bearer   ",
        b"Bearer qh_abc",
        b"bearer qh_abc",
        b"BEARER  qh_abc  ",
        b"Bearer qh_abc def",
        b"Basic qh_abc",
        b" Bearer qh_abc",
        b"Bearerqh_abc",
        b"Bearer \tqh_abc",
    ],
)
def test_the_bearer_token_is_what_fastapis_http_bearer_reads(authorization: bytes | None) -> None:
    """``bearer_token`` gives the token FastAPI's ``HTTPBearer`` (no auto error) gives, and
    ``None`` where it gives no credentials, for well-formed and malformed headers."""
    credentials = asyncio.run(bearer(_request(authorization)))
    expected = None if credentials is None else credentials.credentials
    assert bearer_token(_request(authorization)) == expected
