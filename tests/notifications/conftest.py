"""Fixtures of the notification tests: real local receivers (HTTP and SMTP) and settings by environment."""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from marketplace import clock
from marketplace.settings import get_settings

# 10:00 in Nanjing on a weekday: outside the default quiet hours (22:00-07:00).
DAYTIME = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def daytime():
    clock.freeze(DAYTIME)
    return DAYTIME


@pytest.fixture
def configure(monkeypatch):
    """Set CLOUDMARKET_* variables for one test, as an operator would; settings are read again."""

    def set_env(**variables: object) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()


# -- an HTTP receiver (SMS gateway or webhook endpoint) ------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None
    status: int

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers as scripted.

    With ``secret`` set it verifies the Standard Webhooks signature using that format's own
    library, and answers 401 to a request that does not verify, as an integration would.
    """

    secret: str | None = None
    answers: list[int] = field(default_factory=list)  # statuses for the next requests, then 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else 200

    def verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if receiver.delay:
                time.sleep(receiver.delay)
            verified = receiver.verify(headers, body)
            status = 401 if verified is False else receiver.answer()
            with receiver.lock:
                receiver.requests.append(Received(self.path, headers, body, verified, status))
                n = len(receiver.requests)
            payload = (
                {"id": f"gw-{n}"} if status < 300 else {"code": "bad_signature" if status == 401 else "busy"}
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver():
    recv = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recv))
    recv.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recv
    server.shutdown()
    server.server_close()


# -- an SMTP server ------------------------------------------------------------------------------


class Mailbox:
    """Every e-mail the local SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox(configure):
    """A real SMTP server (aiosmtpd) on 127.0.0.1, and the service configured to use it."""
    box = Mailbox()
    box.port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    configure(
        CLOUDMARKET_SMTP_HOST="127.0.0.1",
        CLOUDMARKET_SMTP_PORT=box.port,
        CLOUDMARKET_SMTP_SECURITY="none",
        CLOUDMARKET_SMTP_FROM="云超市 <noreply@cs.example.gov.cn>",
    )
    yield box
    controller.stop()
