"""The counters keep nothing for a show once it ends, and stay bounded for shows never ended."""

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.nodes import free_port
from twins.counters import LocalCounters, RedisCounters
from twins.redislink import RedisLink

HEART = "\u2764\ufe0f"


async def _a_show(counters: LocalCounters | RedisCounters, stream_id: str) -> None:
    for viewer in ("v1", "v2"):
        await counters.add_unique(stream_id, viewer)
        await counters.add_unique(f"{stream_id}/webrtc", viewer)
        await counters.add_unique(f"{stream_id}/hls", viewer)
    await counters.seed_reactions(stream_id, {HEART: 2})
    await counters.add_reactions(stream_id, {HEART: 1})
    assert await counters.slow_mode(stream_id, "u1", 30) == 0.0


async def test_shows_that_end_leave_nothing_behind() -> None:
    counters = LocalCounters()
    for n in range(50):
        await _a_show(counters, f"show{n}")
    assert counters.held() == 50 * (3 + 1 + 1)
    assert await counters.reactions("show7") == {HEART: 3}
    for n in range(50):
        await counters.forget(f"show{n}")
    assert counters.held() == 0
    assert await counters.reactions("show7") is None  # seeded again from the database
    assert await counters.add_unique("show7", "v9") == 1


async def test_shows_never_ended_are_dropped_oldest_first_at_the_bound() -> None:
    counters = LocalCounters(shows=6)
    for n in range(10):
        await counters.add_unique(f"show{n}", "v1")
        await counters.add_reactions(f"show{n}", {HEART: 1})
    await counters.add_unique("show5", "v2")  # touched again: the newest
    await counters.add_unique("show10", "v1")
    assert counters.held() == 12
    assert await counters.reactions("show3") is None
    assert await counters.reactions("show9") == {HEART: 1}
    assert await counters.add_unique("show5", "v3") == 3  # kept, though older than show6


async def test_untouched_shows_age_out() -> None:
    now = [0.0]
    counters = LocalCounters(max_age=60, clock=lambda: now[0])
    await counters.add_reactions("old", {HEART: 1})
    now[0] = 30
    await counters.add_reactions("recent", {HEART: 1})
    now[0] = 61
    await counters.add_reactions("new", {HEART: 1})
    assert await counters.reactions("old") is None
    assert await counters.reactions("recent") == {HEART: 1}


@pytest.fixture
async def shared() -> AsyncIterator[tuple[RedisLink, str]]:
    link = RedisLink("redis://127.0.0.1:6379/0")
    stream_id = f"test-counters-{uuid.uuid4().hex}"
    yield link, stream_id
    keys = [
        f"sc:{kind}:{stream_id}{part}"
        for kind in ("unique", "reactions")
        for part in ("", "/webrtc", "/hls")
    ]
    await link.client.delete(
        *keys, f"sc:slow:{stream_id}:u1", f"sc:viewers:{stream_id}", f"sc:node:{stream_id}"
    )
    await link.client.srem("sc:nodes", stream_id)
    await link.close()


async def test_redis_counters_keep_nothing_locally_while_redis_answers(
    shared: tuple[RedisLink, str],
) -> None:
    link, stream_id = shared
    local = LocalCounters()
    counters = RedisCounters(link, local)
    await _a_show(counters, stream_id)
    await counters.report_viewers(stream_id, {stream_id: 2})
    assert await counters.reactions(stream_id) == {HEART: 3}
    assert await counters.viewers([stream_id]) == {stream_id: 2}
    assert local.held() == 0
    assert await local.viewers([stream_id]) == {stream_id: 0}


async def test_redis_counters_count_locally_while_redis_is_away_and_forget_at_the_end() -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    local = LocalCounters()
    counters = RedisCounters(link, local)
    try:
        await _a_show(counters, "s1")
        assert await counters.reactions("s1") == {HEART: 3}
        assert await counters.add_unique("s1", "v3") == 3
        assert local.held() == 5
        await counters.forget("s1")
        assert local.held() == 0
    finally:
        await link.close()
