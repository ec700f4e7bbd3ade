"""Tests of ``quarterhour serve`` (router/cli.py): port checks, the uvicorn call, a real start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from router import cli

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


@pytest.mark.parametrize("port", ["x", "0", "65536", "-1", "80.5", ""])
def test_bad_port_exits_2_with_one_line(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A port that is not an integer from 1 to 65535 exits 2 with one line naming it."""
    assert cli.main(["serve", f"--port={port}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "--port" in captured.err and repr(port) in captured.err


def test_serve_runs_the_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve hands uvicorn the app factory, the host and the port (defaults 127.0.0.1:8000)."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "9001"]) == 0
    assert calls == [
        (("api.main:create_app",), {"factory": True, "host": "127.0.0.1", "port": 8000}),
        (("api.main:create_app",), {"factory": True, "host": "0.0.0.0", "port": 9001}),
    ]


def test_the_cli_does_not_import_the_service() -> None:
    """Importing the command line (and router) loads neither fastapi, sqlmodel nor uvicorn."""
    code = (
        "import sys, router, router.cli; "
        "print(sorted(m for m in ('fastapi', 'sqlmodel', 'uvicorn', 'api') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def test_serve_answers_healthz(tmp_path: Path) -> None:
    """``python -m router.cli serve`` starts the service on a SQLite file and answers /healthz."""
    port = free_port()
    env = {
        **os.environ,
        "QUARTERHOUR_DATABASE_URL": f"sqlite:///{tmp_path}/var/quarterhour.db",
        "QUARTERHOUR_ADMIN_TOKEN": "serve-test-token",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        answer: tuple[int, object] | None = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    answer = (response.status, json.loads(response.read()))
                break
            except OSError:  # refused while the server starts (URLError is an OSError)
                time.sleep(0.2)
        assert answer is not None, f"the server did not answer: exit code {server.poll()}"
        assert answer == (200, {"status": "ok"})
        assert (tmp_path / "var" / "quarterhour.db").exists()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM to exit by it (newer versions).
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
