"""The small internet each network test builds, removed after it (skipped without root/nft)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.internet import Internet, unavailable


@pytest.fixture
def internet() -> Iterator[Internet]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with Internet() as net:
        yield net
