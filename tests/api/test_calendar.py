"""A planned show's calendar file parses as RFC 5545 (icalendar) and says when and where."""

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from icalendar import Calendar

from tests.api.test_streams import start_media
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]


async def test_a_planned_show_is_a_calendar_event_with_a_reminder(
    client: Client, shop: Shop
) -> None:
    seller = await shop.account("seller")
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    show = await shop.stream(
        seller,
        title="Winter coats, live",
        description="Wool & down",
        scheduled_at=when.isoformat(),
        estimated_duration=45,
    )
    response = await client.get(f"/api/v1/streams/{show['id']}/calendar.ics")
    assert response.status == 200
    assert response.content_type == "text/calendar"
    assert response.headers["Content-Disposition"] == 'attachment; filename="winter-coats-live.ics"'
    calendar = Calendar.from_ical(await response.read())
    [event] = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == when
    assert event.decoded("duration") == timedelta(minutes=45)
    assert str(event["summary"]) == "Winter coats, live (live on Shopcast)"
    watch = f"http://shopcast.test/watch/{show['id']}"
    assert str(event["url"]) == watch and watch in str(event["description"])
    [alarm] = event.walk("VALARM")
    assert alarm.decoded("trigger") == -timedelta(minutes=15)


async def test_only_a_planned_show_the_caller_may_watch(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    soon = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    undated = await shop.stream(seller, title="Some day")
    await expect_error(
        await client.get(f"/api/v1/streams/{undated['id']}/calendar.ics"), 409, "not_scheduled"
    )
    started = await shop.stream(seller, title="Now", scheduled_at=soon)
    await start_media(client, started["id"])
    await expect_error(
        await client.get(f"/api/v1/streams/{started['id']}/calendar.ics"), 409, "not_scheduled"
    )
    private = await shop.stream(seller, title="Fans", scheduled_at=soon, audience="followers")
    await expect_error(
        await client.get(f"/api/v1/streams/{private['id']}/calendar.ics"), 401, "unauthorized"
    )
    await expect_error(await client.get("/api/v1/streams/nope/calendar.ics"), 404, "not_found")
