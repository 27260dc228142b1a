"""``GET /api/events[?job=ID]``: live job events as Server-Sent Events.

    event: queued    data: {"job": {...}, "position": 0, "eta_seconds": 4.0, "seconds_left": 9.0}
    event: started   data: {"job": {...}}
    event: progress  data: {"job_id": "...", "step": 3, "total": 20, "preview": "data:...",
                            "seconds_left": 3.5}
    event: finished  data: {"job": {...}}

``eta_seconds``: until the job should start; ``seconds_left``: until it should be done (a
running job's estimate blended with its steps so far; the job JSON carries the same fields, see
:func:`bot.web.common.job_json`).

With ``job`` the stream opens with that job's current state (so nothing is missed between
submitting and connecting) and ends after its ``finished`` event; a job the caller may not see
is 404, like one that does not exist. Without it the stream follows every job the caller may
see: an admin's (everyone's on loopback) every job, anyone else's their own. A comment line is
sent every ``HEARTBEAT_SECONDS``; the stream ends when the client goes or the server stops.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.web.auth import principal
from bot.web.common import job_json, web_origin
from bot.web.keys import app_of, state_of
from generation.events import JobEvent, JobFinished, JobProgress, JobQueued, JobStarted
from generation.visibility import EventWatch
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

HEARTBEAT_SECONDS = 15.0


def _preview_url(png: bytes | None) -> str | None:
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


async def event_payload(app: App, event: JobEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, JobProgress):
        data = {
            "job_id": event.job_id,
            "step": event.step,
            "total": event.total,
            "preview": _preview_url(event.preview_png),
        }
        left = app.service.seconds_left(event.job_id)
        if left is not None:
            data["seconds_left"] = round(left, 1)
        return "progress", data
    job = await job_json(app, event.job)
    if isinstance(event, JobQueued):
        payload = {
            "job": job,
            "position": event.position,
            "eta_seconds": round(event.eta_seconds, 1),
            "seconds_left": round(event.seconds_left, 1),
        }
        return "queued", payload
    if isinstance(event, JobStarted):
        return "started", {"job": job}
    return "finished", {"job": job}


def snapshot(app: App, job: JobRecord) -> JobEvent:
    """The job's current state as the event that led to it."""
    if job.is_terminal:
        return JobFinished(job)
    if job.status == "running":
        return JobStarted(job)
    position, eta = app.service.place_in_queue(job) or (0, 0.0)
    return JobQueued(job, position, eta, app.service.seconds_left(job.id) or eta)


async def stream_events(request: web.Request) -> web.StreamResponse:
    app = app_of(request)
    stopping = state_of(request).stopping
    origin = web_origin(principal(request))
    job: JobRecord | None = None
    events: EventWatch
    if request.query.get("job"):
        job = await app.service.job_for(origin, request.query["job"])  # 404 before the stream
        events = app.service.watch_job(job, max_progress=1024)
    else:
        events = await app.service.watch(origin, max_progress=1024, previews=True)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    stop_task = asyncio.ensure_future(stopping.wait())
    try:
        await response.prepare(request)
        pending: list[JobEvent] = []
        if job is not None:  # its state now: anything before the watch began is in it
            pending.append(snapshot(app, await app.service.job_for(origin, job.id)))
        while not stopping.is_set():
            if not pending:
                get_task = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait(
                    {get_task, stop_task},
                    timeout=HEARTBEAT_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if get_task not in done:
                    get_task.cancel()
                    if stop_task not in done:
                        await response.write(b": heartbeat\n\n")
                    continue
                pending.append(get_task.result())
            event = pending.pop(0)
            name, data = await event_payload(app, event)
            text = f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            await response.write(text.encode("utf-8"))
            if job is not None and isinstance(event, JobFinished):
                break
    except ConnectionResetError:
        pass  # the client went away
    finally:
        stop_task.cancel()
        events.close()
    return response


def setup_routes(web_app: web.Application) -> None:
    web_app.router.add_get("/api/events", stream_events)
