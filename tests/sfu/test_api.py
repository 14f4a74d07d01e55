"""The surface the HTTP layer uses: sessions by id, closing rooms, the SFU's own close."""

from __future__ import annotations

import pytest

from peers.webrtc import wait_until
from sfu import (
    ClosedError,
    GoneReason,
    NotLiveError,
    PublisherGone,
    SdpError,
    Sfu,
    UnsupportedMediaError,
)

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


async def test_sessions_are_found_by_id_and_rooms_close_everything(harness: Harness) -> None:
    _, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 0)
    sfu = harness.sfu
    assert sfu.session("room", publisher.id) is publisher
    assert sfu.session("room", subscriber.id) is subscriber
    assert sfu.session("room", "nope") is None
    assert len(publisher.id) >= 20 and publisher.id != subscriber.id  # unguessable

    room = sfu.get_room("room")
    assert room is not None and sfu.rooms() == [room]
    await sfu.close_room("room")
    assert sfu.rooms() == []
    assert room.closed and publisher.closed and subscriber.closed
    assert sfu.get_room("room") is None and sfu.session("room", publisher.id) is None
    assert PublisherGone("room", publisher.id, GoneReason.CLOSED) in harness.events
    with pytest.raises(ClosedError):
        await room.subscribe(viewer.pc.localDescription.sdp)
    await room.close()  # idempotent


async def test_unknown_rooms_are_not_live_and_nothing_is_created(harness: Harness) -> None:
    with pytest.raises(SdpError):
        await harness.sfu.subscribe("ghost", "garbage")
    viewer_offer = "v=0\r\n"
    with pytest.raises(SdpError):
        await harness.sfu.subscribe("ghost", viewer_offer)
    peer, _ = await harness.publish("elsewhere")
    well_formed_offer = peer.pc.localDescription.sdp
    with pytest.raises(NotLiveError):
        await harness.sfu.subscribe("ghost", well_formed_offer)
    assert harness.sfu.get_room("ghost") is None
    # Refused publish offers leave no room either: malformed, or a viewer's (sends nothing).
    with pytest.raises(SdpError):
        await harness.sfu.publish("ghost", viewer_offer)
    with pytest.raises(UnsupportedMediaError):
        await harness.sfu.publish(
            "ghost", (await harness.view("elsewhere"))[0].pc.localDescription.sdp
        )
    assert harness.sfu.get_room("ghost") is None


async def test_closing_the_sfu_is_idempotent() -> None:
    sfu = Sfu()
    await sfu.close()
    await sfu.close()
    assert sfu.closed
