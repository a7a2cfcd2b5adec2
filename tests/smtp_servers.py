"""Throwaway SMTP servers for the mail tests: a real one (aiosmtpd) that keeps what it received, and a hung one."""

import asyncio
import logging
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller

from tests.outages import silent_listener

logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO


@dataclass
class Received:
    """One message as the server got it: the envelope (who it was delivered to) and the message itself."""

    mail_from: str
    rcpt_tos: list[str]
    message: Message

    @property
    def headers(self) -> str:
        return "\n".join(f"{name}: {value}" for name, value in self.message.items())

    @property
    def body(self) -> str:
        return self.message.get_payload(decode=True).decode()


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Addresses the server refuses for now (451, try again later), as a full mailbox or greylisting would.
    refuse: set[str] = field(default_factory=set)

    def recipients(self) -> list[str]:
        """Every delivery (one per envelope recipient), so a duplicate shows up twice."""
        with self.lock:
            return [rcpt for received in self.messages for rcpt in received.rcpt_tos]


class _Handler:
    def __init__(self, inbox: Inbox, delay: float):
        self.inbox, self.delay = inbox, delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.inbox.refuse:
            return "451 4.2.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            # Slows each message so that runs which overlap really send at the same time.
            await asyncio.sleep(self.delay)
        with self.inbox.lock:
            self.inbox.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.original_content))
            )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(*, delay: float = 0.0):
    """A real SMTP server on a free local port, in a thread of the test process; yields its ``Inbox``."""
    port = _free_port()
    inbox = Inbox("127.0.0.1", port)
    controller = Controller(_Handler(inbox, delay), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


# A hung SMTP server: a listener that accepts connections and never answers (yields a tests.outages.Silent).
hung_smtp_server = silent_listener
