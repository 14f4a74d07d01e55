"""An SMTP server's mailbox for tests and benchmarks: aiosmtpd on 127.0.0.1, every message kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


class Inbox:
    """aiosmtpd's handler: keeps every message it is given, as it came (parsed when read, so
    a benchmark's thousands of messages cost the server's loop only their delivery)."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[list[str], bytes]] = []  # (recipients, the message)
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self.envelopes)

    async def holding(self, count: int) -> None:
        """Return once ``count`` messages arrived."""
        while len(self.envelopes) < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.envelopes.append((list(envelope.rcpt_tos), envelope.content))
        self._arrived.set()
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        """Every message, parsed (a method: aiosmtpd reads its handler's attributes)."""
        parsed = [message_from_bytes(raw, policy=policy.default) for _, raw in self.envelopes]
        return [m for m in parsed if isinstance(m, EmailMessage)]


@asynccontextmanager
async def smtp_server(inbox: Inbox) -> AsyncIterator[int]:
    """aiosmtpd on 127.0.0.1 in this event loop, on a port of its own (yielded); closed after."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
