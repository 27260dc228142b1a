"""``GET /api/events[?job=ID]``: live job events as Server-Sent Events.

    event: queued    data: {"job": {...}, "position": 0, "eta_seconds": 4.0}
    event: started   data: {"job": {...}}
    event: progress  data: {"job_id": "...", "step": 3, "total": 20, "preview": "data:..."}
    event: finished  data: {"job": {...}}

With ``job`` the stream opens with that job's current state (so nothing is missed between
submitting and connecting) and ends after its ``finished`` event; without it the stream follows
every job (an admin's, which everyone is on loopback) or the caller's own jobs. A comment line is
sent every ``HEARTBEAT_SECONDS``; the stream ends when the client goes or the server stops.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from bot.app import App
from bot.web.auth import principal
from bot.web.common import job_json, user_key, web_origin
from bot.web.keys import app_of, state_of
from generation.events import JobEvent, JobFinished, JobProgress, JobQueued, JobStarted
from storage.records import JobRecord

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
        return "progress", data
    job = await job_json(app, event.job)
    if isinstance(event, JobQueued):
        payload = {
            "job": job,
            "position": event.position,
            "eta_seconds": round(event.eta_seconds, 1),
        }
        return "queued", payload
    if isinstance(event, JobStarted):
        return "started", {"job": job}
    return "finished", {"job": job}


async def snapshot(app: App, job: JobRecord) -> JobEvent:
    """The job's current state as the event that led to it."""
    if job.is_terminal:
        return JobFinished(job)
    if job.status == "running":
        return JobStarted(job)
    return JobQueued(job, app.queue.position(job.id) or 0, app.queue.eta(job.id) or 0.0)


class _Owner:
    """Decides whether an event belongs to one store user (None: every event passes)."""

    def __init__(self, app: App, user_id: int | None) -> None:
        self.app = app
        self.user_id = user_id
        self.known: dict[str, bool] = {}

    async def allows(self, event: JobEvent) -> bool:
        if self.user_id is None:
            return True
        if isinstance(event, JobProgress):
            if event.job_id not in self.known:
                job = await self.app.store.get_job(event.job_id)
                self.known[event.job_id] = job is not None and job.user_id == self.user_id
            return self.known[event.job_id]
        mine = event.job.user_id == self.user_id
        self.known[event.job.id] = mine
        return mine


async def stream_events(request: web.Request) -> web.StreamResponse:
    app = app_of(request)
    stopping = state_of(request).stopping
    who = principal(request)
    job: JobRecord | None = None
    if request.query.get("job"):
        job = await app.service.get_job(request.query["job"])  # 404 before the stream starts
    owner = _Owner(app, None if who.is_admin or job else await user_key(app, web_origin(who)))
    subscription = app.bus.subscribe(job.id if job else None, max_progress=1024)
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
        if job is not None:
            current = await app.store.get_job(job.id)
            if current is not None:
                pending.append(await snapshot(app, current))
        while not stopping.is_set():
            if not pending:
                get_task = asyncio.ensure_future(subscription.get())
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
            if not await owner.allows(event):
                continue
            name, data = await event_payload(app, event)
            text = f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            await response.write(text.encode("utf-8"))
            if job is not None and isinstance(event, JobFinished):
                break
    except ConnectionResetError:
        pass  # the client went away
    finally:
        stop_task.cancel()
        subscription.close()
    return response


def setup_routes(web_app: web.Application) -> None:
    web_app.router.add_get("/api/events", stream_events)
