"""Text that is not text, and bodies built to exhaust a parser (issue 14): bytes that are not
UTF-8 and lone surrogates in headers, JSON, SDP and Socket.IO payloads; JSON nested deep or with
huge integers; repeated ``a=mid`` lines; multipart field bombs. Each gets a JSON refusal with a
client error code (never a 500), writes nothing, and the node serves normally afterwards.

Each request would succeed without its hostile part, so a check that let one through would
show as a write, a new media session or a stored upload. Each example is sent to every route
(or event) it applies to: hypothesis draws the hostile part, not where it goes.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st

from api.catalog.product_media import MEDIA_UPLOADS
from api.streaming.signaling import MEDIA
from peers.webrtc import PublisherPeer, ViewerPeer
from tests.api.test_commerce import live_show
from tests.api.test_hostile_input import raw_request
from tests.api.test_media import PNG, form_data, upload_url
from tests.badinput.conftest import SHARED_RANDOM, fuzz
from tests.badinput.test_sdp import live_stream
from tests.conftest import Account, Shop, expect_error
from tests.socket_client import Viewer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), SHARED_RANDOM]
Client = TestClient[Any, Any]
SDP = "application/sdp"
SPEC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
REFUSALS = {400, 401, 403, 404, 409, 413, 415, 422, 429}
UPLOADS = "/api/v1/media/uploads"

# Byte sequences no UTF-8 decoder accepts: stray continuation bytes, cut sequences, overlong
# forms, surrogates (lone, and a CESU-8 pair), code points past U+10FFFF.
NOT_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xbf\x80",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xed\xa0\xbd\xed\xb8\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
]
# Lone surrogates (high, low, a reversed pair, a high one before a letter) and NUL, as Python
# text: JSON (ours, and the Socket.IO client's) escapes them as \ud800 and \u0000.
NOT_TEXT = ["\ud800", "\udbff", "\udc00", "\udfff", "\udc00\ud800", "\ud83dx", "\x00"]


def _invalid(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


# High bytes only, so never a control character that would break the HTTP framing itself.
not_utf8 = st.sampled_from(NOT_UTF8) | st.binary(min_size=1, max_size=12).map(
    lambda raw: bytes(b | 0x80 for b in raw)
).filter(_invalid)
not_text = st.sampled_from(NOT_TEXT)
ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=16)


def spread(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers from ``low`` (at least 1) to ``high``, each order of magnitude as likely."""
    decades = []
    start = max(low, 1)
    while start <= high:
        decades.append(st.integers(start, min(start * 10, high)))
        start *= 10
    return st.one_of(decades)


def splice(value: str, at: int, part: str) -> str:
    """``value`` with ``part`` inserted at ``at`` (or at its end)."""
    return value[:at] + part + value[at:]


# The scene: requests that succeed as they are


@dataclass(frozen=True)
class Target:
    """A request that succeeds as it is: a hostile header must be what refuses it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def head(self, name: str, value: bytes) -> bytes:
        """The request line and headers, with ``name`` set to ``value`` (replaced or added)."""
        headers = {k: v.encode() for k, v in self.headers.items() if k.lower() != name.lower()}
        lines = [f"{self.method} {self.path} HTTP/1.1".encode(), b"Host: shopcast.test"]
        lines += [k.encode() + b": " + v for k, v in {**headers, name: value}.items()]
        return b"\r\n".join(lines) + b"\r\n"


@dataclass
class Show:
    """A show with a publisher (WHEP and HLS), a show with a product on sale (orders), a stream
    gone live that nobody publishes to yet (WHIP), and a real offer for each endpoint."""

    seller: Account
    buyer: Account
    media: str
    sale: str
    product: str
    idle: str
    publish: dict[str, str]
    offers: dict[str, str]

    def targets(self) -> dict[str, Target]:
        json_type = {"Content-Type": "application/json"}
        return {
            "order": Target(
                "POST",
                f"/api/v1/streams/{self.sale}/orders",
                {**self.buyer.auth, **json_type, "Idempotency-Key": secrets.token_hex(8)},
                json.dumps({"product_id": self.product}).encode(),
            ),
            "product": Target(
                "POST",
                "/api/v1/products",
                {**self.seller.auth, **json_type},
                json.dumps({"title": "Mug", "price_cents": 100, "stock": 1}).encode(),
            ),
            "whip": Target(
                "POST",
                f"/whip/{self.idle}",
                {**self.publish, "Content-Type": SDP},
                self.offers["whip"].encode(),
            ),
            "whep": Target(
                "POST", f"/whep/{self.media}", {"Content-Type": SDP}, self.offers["whep"].encode()
            ),
            "hls": Target("GET", f"/hls/{self.media}/index.m3u8", {}),
        }


@pytest.fixture
async def show(node: Client, shop: Shop) -> AsyncIterator[Show]:
    """The scene of the header and offer tests; its publisher is closed afterwards."""
    media, _, publisher = await live_stream(node, shop)
    try:
        seller, sale, (product,) = await live_show(node, shop)
        idle = (await shop.stream(seller))["id"]
        went = await node.post(f"/api/v1/streams/{idle}/go-live", headers=seller.auth)
        publish = {"Authorization": f"Bearer {(await went.json())['publish_token']}"}
        # Only the offers' text is needed: their peers are closed at once.
        whip, whep = PublisherPeer(), ViewerPeer(record=False)
        offers = {"whip": await whip.offer(), "whep": await whep.offer()}
        await whip.close()
        await whep.close()
        buyer = await shop.account()
        yield Show(seller, buyer, media, sale, product, idle, publish, offers)
    finally:
        await publisher.close()


# Header values


other_headers = st.sampled_from(
    ["Content-Type", "Origin", "User-Agent", "Cookie", "Accept-Language", "If-Match"]
) | st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True)


def header_refusal(header: str) -> tuple[int, str]:
    """Authorization that is not text is a failed sign-in; any other header, a bad request."""
    return (401, "unauthorized") if header == "Authorization" else (400, "invalid_header")


async def test_header_values_that_are_not_utf8(node: Client, shop: Shop, show: Show) -> None:
    """REST, WHIP, WHEP and HLS answer a header value with bytes that are not UTF-8 (encoded
    lone surrogates among them) with JSON ``401 unauthorized`` for Authorization, else ``400
    invalid_header``, for Idempotency-Key and any other header; nothing is written and no
    media session opened. The same requests with clean headers succeed afterwards."""
    sfu = node.app[MEDIA].sfu
    sessions = sfu.session_count()

    async def send(value: bytes, other: str) -> None:
        async with shop.unchanged():
            for target, request in show.targets().items():
                for name in ("Authorization", "Idempotency-Key", other):
                    status, answer = await raw_request(
                        node, request.head(name, value), request.body
                    )
                    assert (status, answer["error"]) == header_refusal(name), (target, name, answer)
                    assert answer["message"], answer
        assert sfu.session_count() == sessions, "a refused request opened a media session"

    prefixes = st.sampled_from(["", "Bearer ", f"Bearer {show.buyer.token}"]) | ascii_text
    values = st.tuples(prefixes, not_utf8, ascii_text).map(
        lambda parts: parts[0].encode() + parts[1] + parts[2].encode()
    )
    await fuzz(send, examples=20, value=values, other=other_headers)
    for name, request in show.targets().items():
        response = await node.request(
            request.method, request.path, data=request.body or None, headers=request.headers
        )
        assert response.status < 300, (name, response.status, await response.text())
        if "Location" in response.headers:
            await node.delete(response.headers["Location"], headers=show.publish)


# Text that is not text in JSON bodies and Socket.IO payloads


MARK = "@@hostile@@"


@dataclass(frozen=True)
class Poison:
    """``bad`` spliced at character ``at`` into the value, or the name, of a body's text field
    (number ``field`` of them, wrapping around). Bytes go into the JSON as they are; text as
    JSON escapes."""

    field: int
    at: int
    in_name: bool
    bad: bytes | str

    def spliced(self, body: dict[str, Any], part: str) -> dict[str, Any]:
        """``body`` with ``part`` spliced in where this poison goes."""
        texts = sorted(name for name, value in body.items() if isinstance(value, str))
        name = texts[self.field % len(texts)]
        body = dict(body)
        if self.in_name:
            body[splice(name, self.at, part)] = body.pop(name)
        else:
            body[name] = splice(body[name], self.at, part)
        return body

    def json(self, body: dict[str, Any]) -> bytes:
        data = json.dumps(self.spliced(body, MARK)).encode()
        bad = self.bad if isinstance(self.bad, bytes) else json.dumps(self.bad)[1:-1].encode()
        return data.replace(MARK.encode(), bad)

    @property
    def refusal(self) -> tuple[int, str]:
        """Bytes that are not UTF-8 make the body unreadable; escapes make a field invalid."""
        return (400, "invalid_json") if isinstance(self.bad, bytes) else (422, "invalid")


def poisons(bad: st.SearchStrategy[bytes | str]) -> st.SearchStrategy[Poison]:
    return st.builds(Poison, st.integers(0, 5), st.integers(0, 30), st.booleans(), bad)


@dataclass(frozen=True)
class Write:
    """A REST write with a body that succeeds as it is."""

    method: str
    path: str
    body: dict[str, Any]
    auth: Account | None = None

    def send(self, node: Client, data: bytes) -> Any:
        headers = {**(self.auth.auth if self.auth else {}), "Content-Type": "application/json"}
        headers["Idempotency-Key"] = secrets.token_hex(8)
        return node.request(self.method, self.path, data=data, headers=headers)


def writes(seller: Account, buyer: Account, sid: str, product: str) -> dict[str, Write]:
    """Writes to accounts, products, streams, orders, pins and webhooks (chat has no REST
    write: it is a Socket.IO event, below), each valid as it is."""
    return {
        "register": Write(
            "POST",
            "/api/v1/auth/register",
            {"email": "ann@example.com", "password": "correct horse", "display_name": "Ann"},
        ),
        "login": Write(
            "POST", "/api/v1/auth/login", {"email": buyer.email, "password": buyer.password}
        ),
        "product": Write(
            "POST",
            "/api/v1/products",
            {"title": "Mug", "description": "Blue", "price_cents": 100, "stock": 1},
            seller,
        ),
        "product patch": Write(
            "PATCH", f"/api/v1/products/{product}", {"title": "Cup", "description": "Red"}, seller
        ),
        "stream": Write(
            "POST", "/api/v1/streams", {"title": "Show", "description": "Mugs"}, seller
        ),
        "stream settings": Write(
            "PATCH", f"/api/v1/streams/{sid}/settings", {"description": "Cups"}, seller
        ),
        "order": Write("POST", f"/api/v1/streams/{sid}/orders", {"product_id": product}, buyer),
        "pin": Write("POST", f"/api/v1/streams/{sid}/pins", {"product_id": product}, seller),
        "webhook": Write("POST", "/api/v1/webhooks", {"url": "https://shop.example/hook"}, seller),
    }


async def test_json_text_that_is_not_text(node: Client, shop: Shop) -> None:
    """Bytes that are not UTF-8 in a REST body are ``400 invalid_json``; a lone surrogate or NUL
    escaped in a text value or a field name is ``422 invalid``; nothing is written. The same
    bodies without the poison succeed afterwards."""
    seller, sid, (product,) = await live_show(node, shop)
    routes = writes(seller, await shop.account(), sid, product)

    async def send(poison: Poison) -> None:
        async with shop.unchanged():
            for name, write in routes.items():
                response = await write.send(node, poison.json(write.body))
                assert response.status == poison.refusal[0], (name, await response.text())
                await expect_error(response, *poison.refusal)

    await fuzz(send, examples=20, poison=poisons(not_utf8 | not_text))
    for name, write in routes.items():
        response = await write.send(node, json.dumps(write.body).encode())
        assert response.status < 300, (name, response.status, await response.text())


# Each client event's fields but stream_id, with valid values ("product", "buyer" and "message"
# stand for the show's own ids); the sender is the show's seller, joined to it.
SOCKET_EVENTS: dict[str, dict[str, Any]] = {
    "stream:join": {},
    "stream:leave": {},
    "stream:playback": {"playback": "hls"},
    "product:click": {"product_id": "product"},
    "product:ask": {"product_id": "product"},
    "stream:chat": {"text": "hello"},
    "stream:reaction": {"emoji": "🔥"},
    "stream:prepare": {},
    "chat:delete": {"message_id": "message"},
    "moderation:mute": {"user_id": "buyer"},
    "moderation:unmute": {"user_id": "buyer"},
    "moderation:ban": {"user_id": "buyer"},
    "moderation:unban": {"user_id": "buyer"},
    "moderation:slow_mode": {"seconds": 5},
}


# Acks that blame the server rather than the payload.
SERVER_SIDE = ("internal", "database_unavailable")


async def test_socket_text_that_is_not_text(node: Client, shop: Shop) -> None:
    """A lone surrogate or NUL in a field or a field name of every client event acks
    ``{"ok": false}`` with a client error code (never ``internal``); nothing is written and the
    socket stays connected."""
    seller, sid, (product,) = await live_show(node, shop)
    buyer = await shop.account()
    socket = await Viewer().connect(str(node.make_url("/")), token=seller.token)
    try:
        assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
        line = await socket.call("stream:chat", {"stream_id": sid, "text": "first"})
        known = {"product": product, "buyer": buyer.id, "message": line["message"]["id"]}
        payloads = {
            event: {"stream_id": sid, **{k: known.get(v, v) for k, v in fields.items()}}
            for event, fields in SOCKET_EVENTS.items()
        }

        async def send(poison: Poison) -> None:
            assert isinstance(poison.bad, str)  # poisons(not_text): text, for the JSON it sends
            async with shop.unchanged():
                for event, payload in payloads.items():
                    sent = poison.spliced(payload, poison.bad)
                    ack = await socket.call(event, sent)
                    assert not ack["ok"] and ack["error"] not in SERVER_SIDE, (event, sent, ack)
            assert socket.sio.connected

        await fuzz(send, examples=20, poison=poisons(not_text))
        chat = await socket.call("stream:chat", {"stream_id": sid, "text": "still here"})
        assert chat["ok"] or chat["error"] == "rate_limited", chat
    finally:
        await socket.close()


# JSON nesting and number length


def json_routes() -> list[tuple[str, str, list[str]]]:
    """Every documented route with a JSON body: method, path and body field names."""
    found = []
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                fields = sorted(SPEC["components"]["schemas"][ref].get("properties", {}))
                found.append((method.upper(), path, fields))
    return found


# Shapes of nesting (opening, closing, levels each adds) and of numbers (where the digits go).
NESTINGS = {"lists": ("[", "]", 1), "objects": ('{"a":', "}", 1), "both": ('[{"a":', "}]", 2)}
NUMBERS = {"number": "{}", "negative, in a list": "[-{}]", "in a list in an object": '{{"a":[{}]}}'}


@dataclass(frozen=True)
class Exhausting:
    """A value nested ``size`` times in a ``shape`` of NESTINGS, or a number of ``size`` digits
    in a ``shape`` of NUMBERS: the whole body, or the value of a route's field (picked by size)."""

    shape: str
    size: int
    in_field: bool

    def json(self, fields: list[str]) -> bytes:
        if self.shape in NESTINGS:
            opening, closing, _ = NESTINGS[self.shape]
            value = opening * self.size + "0" + closing * self.size
        else:
            value = NUMBERS[self.shape].format("9" * self.size)
        if self.in_field and fields:
            value = json.dumps({fields[self.size % len(fields)]: "@"}).replace('"@"', value)
        return value.encode()

    @property
    def depth(self) -> int:
        """Levels of nesting, not counting the field's object."""
        return self.size * NESTINGS[self.shape][2] if self.shape in NESTINGS else 0

    @property
    def digits(self) -> int:
        return 0 if self.shape in NESTINGS else self.size


def exhausting() -> st.SearchStrategy[Exhausting]:
    """Nested 10 to 100,000 deep, or a number of 1 to 10,000 digits (more often past Python's
    4,300), alone or in a field."""
    depths, digits = spread(10, 100_000), spread(1, 10_000) | st.integers(4000, 10_000)
    return st.sampled_from(sorted(NESTINGS) + sorted(NUMBERS)).flatmap(
        lambda shape: st.builds(
            Exhausting, st.just(shape), depths if shape in NESTINGS else digits, st.booleans()
        )
    )


async def test_json_too_deep_or_too_long(node: Client, shop: Shop) -> None:
    """Every JSON route answers a body nested past the recursion limit, or with an integer past
    Python's digit limit, ``400 invalid_json``, and shallower or shorter ones a JSON refusal
    (the ids in the paths name nothing, so none can succeed); never a 500, nothing written."""
    seller = await shop.account("seller")
    headers = {**seller.auth, "Content-Type": "application/json"}
    routes = [(m, re.sub(r"{\w+}", "x" * 22, path), fields) for m, path, fields in json_routes()]

    async def send(body: Exhausting) -> None:
        # Hypothesis raises the recursion limit while it runs an example: read it now.
        too_big = body.depth > sys.getrecursionlimit() or body.digits > sys.get_int_max_str_digits()
        async with shop.unchanged():
            for method, path, fields in routes:
                response = await node.request(method, path, data=body.json(fields), headers=headers)
                if too_big:
                    await expect_error(response, 400, "invalid_json")
                assert response.status in REFUSALS, (method, path, await response.text())
                error = await response.json()
                assert isinstance(error["error"], str) and error["message"], error

    await fuzz(send, examples=20, body=exhausting())
    assert (await node.get("/readyz")).status == 200


# SDP offers


def sections(lines: list[str]) -> list[list[int]]:
    """The line numbers of each media section (from its m= line to the next)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return [list(range(a, b)) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


def mid_lines(lines: list[str]) -> list[int]:
    """The line number of each media section's a=mid."""
    return [next(i for i in s if lines[i].startswith("a=mid:")) for s in sections(lines)]


@dataclass(frozen=True)
class SharedMid:
    """Section ``into``'s a=mid line replaced by section ``source``'s."""

    source: int
    into: int

    def apply(self, lines: list[str]) -> list[bytes]:
        mids, lines = mid_lines(lines), list(lines)
        lines[mids[self.into]] = lines[mids[self.source]]
        return [line.encode() for line in lines]


@dataclass(frozen=True)
class ExtraMid:
    """A second a=mid line, ``line``, inserted ``at`` lines into section ``section``."""

    section: int
    at: int
    line: str

    def apply(self, lines: list[str]) -> list[bytes]:
        lines = list(lines)
        lines.insert(sections(lines)[self.section][self.at], self.line)
        return [line.encode() for line in lines]


@dataclass(frozen=True)
class NotUtf8:
    """``data`` inserted into line ``line`` at character ``at``."""

    line: int
    at: int
    data: bytes

    def apply(self, lines: list[str]) -> list[bytes]:
        encoded = [line.encode() for line in lines]
        text = encoded[self.line]
        encoded[self.line] = text[: self.at] + self.data + text[self.at :]
        return encoded


Mutation = SharedMid | ExtraMid | NotUtf8


@st.composite
def mutations(draw: st.DrawFn, offer: str) -> Mutation:
    """A second a=mid in a section (its own value, the other section's or a new one), one
    section's a=mid copied over the other's, or bytes that are not UTF-8 in any line."""
    lines = offer.strip().split("\r\n")
    found = sections(lines)
    one, other = draw(st.permutations(range(len(found))))[:2]
    how = draw(st.sampled_from(["shared", "extra", "not utf-8"]))
    if how == "shared":
        return SharedMid(one, other)
    if how == "extra":
        values = [lines[i] for i in mid_lines(lines)]
        line = draw(st.sampled_from([values[one], values[other], "a=mid:extra"]))
        return ExtraMid(one, draw(st.integers(1, len(found[one]) - 1)), line)
    i = draw(st.integers(0, len(lines) - 1))
    return NotUtf8(i, draw(st.integers(0, len(lines[i]))), draw(not_utf8))


async def test_offers_not_utf8_or_with_repeated_mids(node: Client, shop: Shop, show: Show) -> None:
    """WHIP and WHEP answer an offer with bytes that are not UTF-8, with two sections sharing
    an a=mid, or with a section holding two, ``400 invalid_sdp``; no media session is opened
    and nothing written; the real offers are answered afterwards."""
    sfu = node.app[MEDIA].sfu
    sessions = sfu.session_count()
    targets = show.targets()

    async def post(whip: Mutation, whep: Mutation) -> None:
        for kind, mutation in (("whip", whip), ("whep", whep)):
            target = targets[kind]
            lines = show.offers[kind].strip().split("\r\n")
            body = b"\r\n".join(mutation.apply(lines)) + b"\r\n"
            async with shop.unchanged():
                response = await node.post(target.path, data=body, headers=target.headers)
                if response.status == 201:  # end the session it should not have: later ones count
                    await node.delete(response.headers["Location"], headers=show.publish)
                assert response.status == 400, (kind, mutation, response.status)
                await expect_error(response, 400, "invalid_sdp")
            assert sfu.session_count() == sessions, f"a refused {kind} offer opened a session"

    await fuzz(post, whip=mutations(show.offers["whip"]), whep=mutations(show.offers["whep"]))
    for kind in ("whip", "whep"):
        target = targets[kind]
        answer = await node.post(target.path, data=target.body, headers=target.headers)
        assert answer.status == 201, await answer.text()
        await node.delete(answer.headers["Location"], headers=show.publish)


# Multipart field bombs


@dataclass(frozen=True)
class Bomb:
    """``count`` form fields of ``size`` bytes, named after ``names``, sent before the real ones;
    and the error code they must get."""

    count: int
    size: int
    names: str
    code: str

    def fields(self) -> list[tuple[str, str]]:
        return [(self.names.format(n), "x" * self.size) for n in range(self.count)]


def bombs() -> st.SearchStrategy[Bomb]:
    """More than 32 fields, more than 64 KiB of fields of at most 8 KiB, or one over 8 KiB."""
    names = st.sampled_from(["f{}", "key", "x-amz-{}", "{}"])
    many = st.builds(Bomb, spread(33, 3000), st.integers(0, 64), names, st.just("form_too_large"))
    big = st.integers(4097, 8192).flatmap(
        lambda size: st.builds(
            Bomb,
            st.integers(65536 // size + 1, 31),
            st.just(size),
            names,
            st.just("form_too_large"),
        )
    )
    huge = st.builds(Bomb, st.just(1), spread(8193, 1_000_000), names, st.just("field_too_large"))
    return many | big | huge


async def test_upload_field_bombs(node: Client, shop: Shop) -> None:
    """An anonymous upload form with too many fields, too many bytes of them or one too large is
    ``400 form_too_large`` (``field_too_large`` for the one) before the file: nothing is stored
    or written, and the same form without the bomb uploads afterwards."""
    seller = await shop.account("seller")
    product = (await shop.product(seller))["id"]
    grant = await upload_url(node, seller, product, "image", "image/png", len(PNG))
    store = node.app[MEDIA_UPLOADS].store
    stored = sorted(store.root.rglob("*"))

    async def post(bomb: Bomb) -> None:
        form = aiohttp.FormData(bomb.fields())
        for name, value in grant["fields"].items():
            form.add_field(name, value)
        form.add_field("file", PNG, filename="a.png", content_type="image/png")
        async with shop.unchanged():
            await expect_error(await node.post(UPLOADS, data=form), 400, bomb.code)
        assert sorted(store.root.rglob("*")) == stored, "a refused form stored a file"

    await fuzz(post, examples=20, bomb=bombs())
    form = form_data(grant["fields"], PNG, "image/png")
    assert (await node.post(UPLOADS, data=form)).status == 204
    assert await store.get_bytes(grant["upload_key"]) == PNG
