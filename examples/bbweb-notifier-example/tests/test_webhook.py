"""WebhookNotifier's delivery against a real HTTP server on localhost (no master needed).

Run with ``pytest tests`` from the package directory once it is installed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from bbweb_notifier_example import WebhookNotifier

from bbweb.mastercfg.errors import ConfigErrors
from bbweb.plugins.notifiers.base import DeliveryError, Notification, Rejected


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received, Receiver.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def note(payload):
    return Notification(key="k-1", what="b #1", recipients=["x"], payload=payload)


def test_delivers_json_with_an_idempotency_key(receiver):
    answer = WebhookNotifier(receiver).deliver(note({"builder": "b", "number": 1}))
    assert answer == "200 OK"
    assert Receiver.received == [("k-1", {"builder": "b", "number": 1})]


def test_server_errors_are_retried_client_errors_are_not(receiver):
    Receiver.status = 503
    with pytest.raises(DeliveryError, match="503"):
        WebhookNotifier(receiver).deliver(note({}))
    Receiver.status = 404
    with pytest.raises(Rejected, match="404"):
        WebhookNotifier(receiver).deliver(note({}))


def test_an_unreachable_receiver_is_retried(receiver):
    with pytest.raises(DeliveryError, match="ConnectionError"):
        WebhookNotifier("http://127.0.0.1:9/nothing-listens-here").deliver(note({}))


def test_bad_options_are_configuration_errors():
    with pytest.raises(ConfigErrors, match="must be an http:// or https:// URL"):
        WebhookNotifier("ftp://example.org")
    with pytest.raises(ConfigErrors, match="name="):
        WebhookNotifier("https://example.org", name="has spaces")
