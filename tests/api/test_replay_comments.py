"""Replay comments on both engines: at a moment of the replay, in the video's order, moderated
like chat, off when the show turns them off, and refused with nothing changed."""

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Account, Shop, expect_error

Client = TestClient[Any, Any]
REPLAY = "http://media.test/vod/master.m3u8"


async def replayed(shop: Shop, seller: Account, **fields: Any) -> str:
    """A show that ended and whose replay is published: its id."""
    show = await shop.stream(seller, **fields)
    await shop.execute(
        "UPDATE streams SET status = 'ended', vod_url = :url WHERE id = :id",
        url=REPLAY,
        id=show["id"],
    )
    return str(show["id"])


async def comment(client: Client, sid: str, who: Account, at: float, text: str) -> Any:
    return await client.post(
        f"/api/v1/streams/{sid}/comments",
        json={"at_seconds": at, "text": text},
        headers=who.auth,
    )


async def test_comments_are_anchored_at_a_moment_and_listed_in_the_videos_order(
    client: Client, shop: Shop
) -> None:
    seller, ann, ben = await shop.account("seller"), await shop.account(), await shop.account()
    sid = await replayed(shop, seller)
    made = await comment(client, sid, ann, 754.5, "  What about\nthe blue one?  ")
    assert made.status == 201
    body = await made.json()
    assert (body["at_seconds"], body["text"]) == (754.5, "What about the blue one?")
    assert body["user"]["id"] == ann.id
    assert (await comment(client, sid, ben, 12.0, "Love the intro")).status == 201
    listed = await (await client.get(f"/api/v1/streams/{sid}/comments")).json()
    assert [(c["at_seconds"], c["user"]["id"]) for c in listed] == [(12.0, ben.id), (754.5, ann.id)]


async def test_comments_are_moderated_like_chat(client: Client, shop: Shop) -> None:
    seller, ann, troll = await shop.account("seller"), await shop.account(), await shop.account()
    moderator = await shop.account("moderator")
    sid = await replayed(shop, seller)
    mine = await (await comment(client, sid, ann, 5, "Nice")).json()
    rude = await (await comment(client, sid, troll, 6, "Rude")).json()
    other = await (await comment(client, sid, troll, 7, "Ruder")).json()
    # Someone else's comment: only its author, the seller and moderators delete it.
    await expect_error(
        await client.delete(f"/api/v1/streams/{sid}/comments/{rude['id']}", headers=ann.auth),
        403,
        "forbidden",
    )
    for who, target in ((seller, rude), (moderator, other), (ann, mine)):
        deleted = await client.delete(
            f"/api/v1/streams/{sid}/comments/{target['id']}", headers=who.auth
        )
        assert deleted.status == 204
    assert await (await client.get(f"/api/v1/streams/{sid}/comments")).json() == []
    await expect_error(
        await client.delete(f"/api/v1/streams/{sid}/comments/{mine['id']}", headers=ann.auth),
        404,
        "not_found",
    )
    # A muted account cannot comment; a banned one cannot even see the show.
    muted = await client.put(
        f"/api/v1/streams/{sid}/sanctions/{troll.id}/mute", headers=seller.auth
    )
    assert muted.status in (200, 201, 204), await muted.text()
    async with shop.unchanged():
        await expect_error(await comment(client, sid, troll, 8, "Again"), 403, "muted")
    banned = await client.put(
        f"/api/v1/streams/{sid}/sanctions/{troll.id}/ban", headers=seller.auth
    )
    assert banned.status in (200, 201, 204), await banned.text()
    async with shop.unchanged():
        await expect_error(await comment(client, sid, troll, 8, "Again"), 403, "banned")


async def test_refusals_change_nothing(client: Client, shop: Shop) -> None:
    seller, ann = await shop.account("seller"), await shop.account()
    off = await replayed(shop, seller, enable_comments=False)
    live_only = (await shop.stream(seller, title="Not over"))["id"]
    sid = await replayed(shop, seller)
    async with shop.unchanged():
        await expect_error(await comment(client, off, ann, 1, "Hi"), 409, "comments_off")
        await expect_error(await client.get(f"/api/v1/streams/{off}/comments"), 409, "comments_off")
        await expect_error(await comment(client, live_only, ann, 1, "Hi"), 409, "no_replay")
        for bad in ({"at_seconds": -1, "text": "x"}, {"at_seconds": 1, "text": ""},
                    {"at_seconds": 1, "text": "x" * 501}, {"at_seconds": "soon", "text": "x"},
                    {"text": "x"}):  # fmt: skip
            response = await client.post(
                f"/api/v1/streams/{sid}/comments", json=bad, headers=ann.auth
            )
            await expect_error(response, 422, "invalid")
        await expect_error(await comment(client, sid, ann, 1, " \u202e "), 422, "invalid")
        await expect_error(
            await client.post(
                f"/api/v1/streams/{sid}/comments", json={"at_seconds": 1, "text": "x"}
            ),
            401,
            "unauthorized",
        )
    for _ in range(5):
        assert (await comment(client, sid, ann, 1, "again")).status == 201
    async with shop.unchanged():
        await expect_error(await comment(client, sid, ann, 1, "again"), 429, "rate_limited")
