"""argon2 runs off the event loop, a bounded number at a time."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from api.identity.auth import Passwords, hash_password, verify_password

TICK = 0.005


async def stalls(work: Awaitable[object]) -> list[float]:
    """How long each TICK-second sleep overran while ``work`` ran (the loop was held), sorted."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    overruns = []
    while not task.done():
        start = loop.time()
        await asyncio.sleep(TICK)
        overruns.append(loop.time() - start - TICK)
    await task
    return sorted(overruns)


async def test_hashing_leaves_the_loop_free_where_a_blocking_hash_holds_it() -> None:
    """Four checks on one thread against one on the loop, in the same run: nine in ten of the
    loop's ticks come within a quarter of the stall that one blocking check causes (the rest may
    meet the machine's other load, as the blocking one does)."""
    stored = hash_password("a password")
    passwords = Passwords(1)

    async def blocking() -> None:
        verify_password(stored, "a password")

    async def threaded() -> list[bool]:
        return await asyncio.gather(*(passwords.verify(stored, "a password") for _ in range(4)))

    held = max(await stalls(blocking()))
    try:
        free = await stalls(threaded())
    finally:
        passwords.close()
    p90 = free[len(free) * 9 // 10]
    assert p90 < held / 4, f"loop held {p90:.3f} s (p90) by 4 threaded checks, {held:.3f} s by one"


async def test_at_most_concurrency_hashes_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def counted(real: Callable[..., object]) -> Callable[..., object]:
        def run(*args: str) -> object:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.02)
            with lock:
                running -= 1
            return real(*args)

        return run

    monkeypatch.setattr("api.identity.auth.hash_password", counted(lambda p: f"hash of {p}"))
    monkeypatch.setattr("api.identity.auth.verify_password", counted(lambda h, p: h == p))
    passwords = Passwords(2)
    try:
        hashes = await asyncio.gather(*(passwords.hash(str(n)) for n in range(6)))
        checks = await asyncio.gather(*(passwords.verify("x", p) for p in ("x", "y") * 3))
    finally:
        passwords.close()
    assert hashes == [f"hash of {n}" for n in range(6)]
    assert checks == [True, False] * 3
    assert most == 2


async def test_hashing_threads_run_at_the_lowest_priority() -> None:
    passwords = Passwords(1)
    try:
        await passwords.hash("x")
        (thread,) = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == 19
    finally:
        passwords.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) < 19, "the loop's thread keeps its priority"
