"""Fuzzed SDP offers (WHIP, WHEP) and trickle-ICE fragments: a clear 4xx, never a 500, and no
session or peer connection left behind."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection
from hypothesis import strategies as st

from api.streaming.signaling import MEDIA
from peers.webrtc import PublisherPeer, ViewerPeer
from tests.badinput.conftest import SHARED_RANDOM, fuzz
from tests.conftest import Shop, eventually, expect_error

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), SHARED_RANDOM]
Client = TestClient[Any, Any]
SDP = "application/sdp"
REFUSED = {400: "invalid_sdp", 413: "payload_too_large", 415: "unsupported_media_type"}
REFUSED_MEDIA = {422: "unsupported_media"}


@st.composite
def mutated(draw: st.DrawFn, lines: list[str]) -> str:
    """A real offer with a few lines dropped, repeated, replaced, garbled or cut short."""
    lines = list(lines)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "repeat", "replace", "garble", "cut", "number"]))
        if how == "drop":
            del lines[i]
        elif how == "repeat":
            lines.insert(i, lines[i])
        elif how == "replace":
            lines[i] = draw(st.text(max_size=80))
        elif how == "garble":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(min_size=1, max_size=8)) + lines[i][at:]
        elif how == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = "".join(
                str(draw(st.integers(-(2**40), 2**40))) if c.isdigit() else c for c in lines[i]
            )
        if not lines:
            break
    return "\r\n".join(lines) + "\r\n"


def offers(real: str) -> st.SearchStrategy[bytes]:
    lines = real.strip().split("\r\n")
    return st.one_of(
        mutated(lines).map(str.encode),
        st.text(max_size=300).map(str.encode),
        st.binary(max_size=300),
    )


def peer_connections() -> int:
    gc.collect()
    return sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())


async def live_stream(client: Client, shop: Shop) -> tuple[str, str, PublisherPeer]:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = str((await live.json())["publish_token"])
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": SDP, "Authorization": f"Bearer {token}"},
    )
    assert answer.status == 201, await answer.text()
    await publisher.accept(await answer.text())

    async def is_live() -> bool:
        return bool((await (await client.get(f"/api/v1/streams/{sid}")).json())["status"] == "live")

    await eventually(is_live, 10, "never live")
    return sid, token, publisher


async def check_refusal(response: Any, accepted: list[str]) -> None:
    if response.status == 201:  # a mutation that is still a valid offer
        accepted.append(response.headers["Location"])
        return
    codes = {**REFUSED, **REFUSED_MEDIA}
    assert response.status in codes, (response.status, await response.text())
    await expect_error(response, response.status, codes[response.status])


async def test_fuzzed_whep_offers(node: Client, shop: Shop) -> None:
    sid, _, publisher = await live_stream(node, shop)
    media = node.app[MEDIA]
    viewer = ViewerPeer(record=False)
    real = await viewer.offer()
    await viewer.close()
    before = peer_connections()
    accepted: list[str] = []

    async def post(body: bytes, content_type: str) -> None:
        response = await node.post(
            f"/whep/{sid}", data=body, headers={"Content-Type": content_type}
        )
        if content_type != SDP:
            await expect_error(response, 415, "unsupported_media_type")
        else:
            await check_refusal(response, accepted)

    await fuzz(post, body=offers(real), content_type=st.sampled_from([SDP, SDP, "text/plain", ""]))
    for location in accepted:
        assert (await node.delete(location)).status == 200
    await eventually(lambda: media.sfu.viewers(sid) == 0, 10, "a WHEP session was left behind")
    await eventually(lambda: peer_connections() <= before, 10, "a peer connection was left")
    assert media.sfu.session_count() == 1, "only the real publisher is left"
    await _still_serves(node, sid)
    await publisher.close()


@pytest.mark.parametrize(
    ("line", "replacement"),
    [("a=rtcp-mux", ""), ("a=recvonly", "")],
    ids=["no rtcp-mux", "no direction"],
)
async def test_offers_aiortc_would_refuse_mid_answer(
    node: Client, shop: Shop, line: str, replacement: str
) -> None:
    """Found by the fuzzer: these reached aiortc's own checks and answered 500."""
    sid, _, publisher = await live_stream(node, shop)
    viewer = ViewerPeer(record=False)
    offer = (await viewer.offer()).replace(
        f"{line}\r\n", f"{replacement}\r\n" if replacement else ""
    )
    await viewer.close()
    async with shop.unchanged():
        response = await node.post(f"/whep/{sid}", data=offer, headers={"Content-Type": SDP})
        await expect_error(response, 400, "invalid_sdp")
    assert node.app[MEDIA].sfu.viewers(sid) == 0
    await publisher.close()


async def test_fuzzed_whip_offers(node: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await node.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    auth = {"Authorization": f"Bearer {(await live.json())['publish_token']}"}
    media = node.app[MEDIA]
    publisher = PublisherPeer()
    real = await publisher.offer()
    await publisher.close()
    before = peer_connections()
    accepted: list[str] = []

    async def post(body: bytes) -> None:
        response = await node.post(f"/whip/{sid}", data=body, headers={**auth, "Content-Type": SDP})
        await check_refusal(response, accepted)

    await fuzz(post, body=offers(real))
    for location in accepted:
        await node.delete(location, headers=auth)
    await eventually(lambda: media.sfu.session_count() == 0, 10, "a WHIP session was left")
    await eventually(lambda: peer_connections() <= before, 10, "a peer connection was left")


@st.composite
def fragments(draw: st.DrawFn) -> str:
    line = draw(
        st.one_of(
            st.just("a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"),
            st.builds(
                "a=candidate:{} {} {} {} {} {} typ {}".format,
                st.text(max_size=6),
                st.integers(-5, 300),
                st.sampled_from(["udp", "tcp", "sctp", ""]),
                st.integers(-1, 2**33),
                st.sampled_from(["127.0.0.1", "::1", "x.local", "999.1.1.1", ""]),
                st.integers(-1, 70000),
                st.sampled_from(["host", "srflx", "relay", "bogus"]),
            ),
            st.text(max_size=120),
        )
    )
    head = draw(
        st.sampled_from(["", "a=ice-ufrag:x\r\na=ice-pwd:y\r\n", "m=audio 9 RTP/AVP 0\r\n"])
    )
    return head + line + "\r\n"


async def test_fuzzed_trickle_fragments(node: Client, shop: Shop) -> None:
    sid, _, publisher = await live_stream(node, shop)
    viewer = ViewerPeer(record=False)
    answer = await node.post(
        f"/whep/{sid}", data=await viewer.offer(), headers={"Content-Type": SDP}
    )
    assert answer.status == 201
    await viewer.accept(await answer.text())
    location, etag = answer.headers["Location"], answer.headers["ETag"]

    async def patch(fragment: str) -> None:
        response = await node.patch(
            location,
            data=fragment.encode(),
            headers={"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag},
        )
        if response.status != 204:
            codes = {400: "invalid_sdp", 422: "ice_restart_unsupported"}
            assert response.status in codes, (response.status, await response.text())
            await expect_error(response, response.status, codes[response.status])

    await fuzz(patch, fragment=fragments())
    await eventually(lambda: sum(viewer.counts.values()) > 10, 10, "the session broke")
    await viewer.close()
    await publisher.close()


async def _still_serves(client: Client, sid: str) -> None:
    viewer = ViewerPeer(record=False)
    answer = await client.post(
        f"/whep/{sid}", data=await viewer.offer(), headers={"Content-Type": SDP}
    )
    assert answer.status == 201
    await viewer.accept(await answer.text())
    await eventually(lambda: sum(viewer.counts.values()) > 10, 10, "no video after the fuzzing")
    await viewer.close()
