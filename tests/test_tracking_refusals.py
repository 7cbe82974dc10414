"""A tracking server that refuses the client (401, 403) fails ``open_experiment`` and the UI with one line.

The server is a real HTTP server on loopback that answers ``/health`` and refuses every API call, as
MLflow's basic-auth app does; MLflow's own client talks to it. ``test_team_server.py`` checks the
same against the real auth app, end to end.
"""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from polyexp.core.errors import TrackingError
from polyexp.run.tracking import open_experiment


def refusing_server(status: int) -> type[BaseHTTPRequestHandler]:
    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
                return
            self.send_response(status)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(b"You are not authenticated.")

        def log_message(self, *args: object) -> None:
            pass

    return Refusing


@pytest.fixture(params=[401, 403])
def refusing(request) -> Iterator[tuple[int, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), refusing_server(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refused_credentials_fail_with_one_line(refusing, monkeypatch):
    status, uri = refusing
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(TrackingError) as raised:
        open_experiment(uri, "polyexp")
    message = str(raised.value)
    assert "\n" not in message and f"the MLflow tracking server at {uri}" in message
    assert f"(HTTP {status})" in message
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in message
    if status == 401:
        assert "refused the credentials" in message
    else:
        assert "denied user 'alice' access to tracking.experiment='polyexp'" in message


def test_the_ui_says_the_same_of_a_server_that_refuses(refusing, monkeypatch):
    from polyexp.ui import UiError, _find_experiment

    status, uri = refusing
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    with pytest.raises(UiError) as raised:
        _find_experiment(uri, "polyexp")
    assert str(raised.value).startswith(f"the MLflow tracking server at {uri} ") and f"(HTTP {status})" in str(
        raised.value)
