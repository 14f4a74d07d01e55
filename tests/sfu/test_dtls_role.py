"""The SFU answers every offered DTLS role with the complementary one, passive when it may.

GStreamer's webrtcbin fails as the DTLS server of an aiortc client (issue 15), so an
``actpass`` offer is answered ``passive``; ``active`` and ``passive`` offers get the other role.
The offers are aiortc's own (always ``actpass``), edited: aiortc then takes the role the
answer leaves it, so each edited offer still connects, and media must flow in every case.
"""

from __future__ import annotations

import inspect

import pytest
from aiortc import RTCDtlsTransport, RTCPeerConnection

from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from sfu import Publisher, Subscriber
from sfu.aiortc_hooks import dtls_transports
from sfu.dtls_role import answering_roles

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)

# offered a=setup -> (the answer's a=setup, the SFU's DTLS role)
ROLES = {
    "actpass": ("passive", "server"),
    "active": ("passive", "server"),
    "passive": ("active", "client"),
}


def offering(sdp: str, setup: str) -> str:
    assert sdp.count("a=setup:actpass") == 2  # audio and video
    return sdp.replace("a=setup:actpass", f"a=setup:{setup}")


def setups(sdp: str) -> list[str]:
    return [line[len("a=setup:") :] for line in sdp.splitlines() if line.startswith("a=setup:")]


async def publish(harness: Harness, setup: str) -> tuple[PublisherPeer, Publisher, str]:
    peer = PublisherPeer()
    harness.peers.append(peer)
    publisher, answer = await harness.sfu.publish("room", offering(await peer.offer(), setup))
    await peer.accept(answer)
    return peer, publisher, answer


async def view(harness: Harness, setup: str) -> tuple[ViewerPeer, Subscriber, str]:
    peer = ViewerPeer()
    harness.peers.append(peer)
    subscriber, answer = await harness.sfu.subscribe("room", offering(await peer.offer(), setup))
    assert isinstance(subscriber, Subscriber)
    await peer.accept(answer)
    return peer, subscriber, answer


@pytest.mark.parametrize("setup", list(ROLES))
async def test_each_offered_role_gets_its_complement_and_media_flows(
    harness: Harness, setup: str
) -> None:
    answered, role = ROLES[setup]
    _, publisher, answer = await publish(harness, setup)
    assert setups(answer) == [answered, answered]
    assert [dtls._role for dtls in dtls_transports(publisher.pc)] == [role]
    await wait_until(lambda: publisher.live and publisher.producers["video"].keyframes > 0)

    viewer, subscriber, answer = await view(harness, setup)
    assert setups(answer) == [answered, answered]
    assert [dtls._role for dtls in dtls_transports(subscriber.pc)] == [role]
    await wait_until(lambda: len(viewer.video_packets()) > 20 and len(viewer.audio_packets()) > 5)


async def test_a_session_level_setup_applies_to_every_section() -> None:
    peer = ViewerPeer()
    try:
        sdp = (await peer.offer()).replace("a=setup:actpass\r\n", "")
        head, first_media, rest = sdp.partition("m=")
        assert answering_roles(f"{head}a=setup:passive\r\n{first_media}{rest}") == {
            "0": "client",
            "1": "client",
        }
    finally:
        await peer.close()


def test_the_aiortc_internals_of_set_dtls_role() -> None:
    """``set_dtls_role`` (sfu/aiortc_hooks.py) against the installed aiortc."""
    assert list(inspect.signature(RTCDtlsTransport._set_role).parameters) == ["self", "role"]
    answer = inspect.getsource(RTCPeerConnection.createAnswer)
    assert 'if dtlsTransport._role == "auto":' in answer
    assert "media.dtls.role = dtlsTransport._role" in answer
    remote = inspect.getsource(RTCPeerConnection.setRemoteDescription)
    assert 'if description.type == "offer" and media.dtls.role == "client":' in remote
    assert 'if self._role == "auto":' in inspect.getsource(RTCDtlsTransport.start)
