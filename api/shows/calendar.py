"""A planned show as a calendar event (RFC 5545): the watch page's "Add to calendar"."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from icalendar import Alarm, Calendar, Event

from api.accounts.handles import slug
from api.shows.access import viewable_stream
from api.web.context import Context
from api.web.errors import ApiError
from api.web.routing import Api, Auth
from live.states import StreamStatus

api = Api()
CALENDAR = "text/calendar"
DEFAULT_MINUTES = 60  # a show that gives no estimate
REMIND_BEFORE = timedelta(minutes=15)


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/calendar.ics",
    summary="A planned show as a calendar event",
    tag="streams",
    auth=Auth.OPTIONAL,
    errors=(401, 403, 404, 409),
    produces=CALENDAR,
    description="text/calendar (RFC 5545), as an attachment: one event at the show's "
    "scheduled_at, as long as its estimated_duration (60 min without one), linking to the "
    "watch page, with an alarm 15 minutes before. 409 not_scheduled for a show with no date "
    "or that has started.",
)
async def show_calendar(ctx: Context, stream_id: str) -> web.Response:
    stream = await viewable_stream(ctx, stream_id)
    if stream.scheduled_at is None or stream.status != StreamStatus.CREATED:
        raise ApiError(409, "not_scheduled", "This show has no date to put in a calendar")
    watch = f"{ctx.services.public_url}/watch/{stream.id}"
    event = Event()
    event.add("uid", f"{stream.id}@shopcast")
    event.add("dtstamp", stream.updated_at)
    event.add("dtstart", stream.scheduled_at)
    event.add("duration", timedelta(minutes=stream.estimated_duration or DEFAULT_MINUTES))
    event.add("summary", f"{stream.title} (live on Shopcast)")
    event.add("description", f"{stream.description}\n\n{watch}".strip())
    event.add("url", watch)
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"{stream.title} starts in 15 minutes")
    alarm.add("trigger", -REMIND_BEFORE)
    event.add_component(alarm)
    calendar = Calendar()
    calendar.add("prodid", "-//Shopcast//Shows//EN")
    calendar.add("version", "2.0")
    calendar.add_component(event)
    name = slug(stream.title, 60) or "show"
    return web.Response(
        body=calendar.to_ical(),
        content_type=CALENDAR,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.ics"'},
    )
