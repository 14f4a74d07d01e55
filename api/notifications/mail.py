"""Email over SMTP (aiosmtplib): a notice of a show, with its plain-text and HTML bodies and
the one-click unsubscribe headers (RFC 2369, RFC 8058)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid, parseaddr

import aiosmtplib

from api.notifications.notices import Words
from api.notifications.outcome import SENT, Outcome, refused, retry

SEND_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str
    password: str
    sender: str
    starttls: bool


@dataclass(frozen=True)
class NoticeMail:
    to: str
    seller: str
    words: Words
    url: str  # the show's page
    unsubscribe_page: str
    one_click: str


@dataclass(frozen=True)
class Mail:
    to: str
    content: bytes


class Mailer:
    """Sends messages over one SMTP connection per batch. Holds no connection between
    batches, so it has nothing to close."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._envelope_from = parseaddr(config.sender)[1]

    def message(self, mail: NoticeMail) -> Mail:
        """The message as sent: multipart/alternative, plain text then HTML. Built with the
        compat32 classes, a tenth the cost of EmailMessage's header objects per message."""
        message = MIMEMultipart("alternative")
        message["From"] = self._config.sender
        message["To"] = mail.to
        words = mail.words
        message["Subject"] = Header(f"{words.headline}: {words.title}", "utf-8").encode()
        message["Message-ID"] = make_msgid(domain=self._config.sender.rpartition("@")[2])
        message["List-Unsubscribe"] = f"<{mail.one_click}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        plain = (
            f"{words.lead}\n\n{words.link}: {mail.url}\n\n"
            f"No more emails of {mail.seller}'s shows: {mail.unsubscribe_page}\n"
        )
        seller, title = html.escape(mail.seller), html.escape(words.title)
        when = f", starting {html.escape(words.when)}" if words.at else ""
        url, leave = html.escape(mail.url), html.escape(mail.unsubscribe_page)
        rich = (
            f"<!doctype html><html><body><p><strong>{html.escape(words.headline)}</strong>: "
            f'{title}{when}</p><p><a href="{url}">{html.escape(words.link)}</a></p>'
            f'<p style="color:#666;font-size:12px"><a href="{leave}">No more emails of '
            f"{seller}'s shows</a></p></body></html>"
        )
        message.attach(MIMEText(plain, "plain", "utf-8"))
        message.attach(MIMEText(rich, "html", "utf-8"))
        return Mail(mail.to, message.as_bytes())

    async def send(self, mails: list[NoticeMail]) -> list[Outcome]:
        """Send each mail over one connection, built just before it is sent (so building a
        batch never holds the event loop); a mail the connection failed before is to try
        again, and so is one the server deferred (4xx)."""
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            start_tls=config.starttls,
            username=config.username or None,
            password=config.password or None,
            timeout=SEND_SECONDS,
        )
        outcomes: list[Outcome] = []
        try:
            async with client:
                for mail in mails:
                    message = self.message(mail)
                    outcomes.append(await _send_one(client, self._envelope_from, message))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            lost = retry(f"{type(exc).__name__}: {exc}")
            outcomes += [lost] * (len(mails) - len(outcomes))
        return outcomes


async def _send_one(client: aiosmtplib.SMTP, sender: str, mail: Mail) -> Outcome:
    try:
        await client.sendmail(sender, [mail.to], mail.content)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [error.code for error in exc.recipients]
        return retry(str(exc)) if all(400 <= c < 500 for c in codes) else refused(str(exc))
    except aiosmtplib.SMTPResponseException as exc:
        text = f"{exc.code} {exc.message}"
        return retry(text) if 400 <= exc.code < 500 else refused(text)
    return SENT
