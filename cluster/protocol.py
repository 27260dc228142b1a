"""What travels through the broker, and under which Redis keys (pure: no Redis here).

Keys (``<p>`` is ``cluster.prefix``)::

    <p>:workers               set of worker names that announced themselves
    <p>:worker:<name>         the worker's latest heartbeat (JSON), expiring after the timeout
    <p>:work:<name>           stream of batches for one worker (consumer group "worker")
    <p>:batch:<id>            hash: state (assigned | started), worker, jobs: who owns a batch
    <p>:results               stream to the engine (consumer group "engine"): started, outcome
    <p>:progress              pub/sub: step progress and previews (disposable)
    <p>:cancel                pub/sub: job ids to stop; <p>:cancelled holds them too
    <p>:models                the model registry the engine renders from (JSON), for workers
                              to say which models they can load

A batch hash is the lock on a batch: a worker *claims* it (assigned -> started) before it
renders, the engine *recalls* one that is still only assigned (fairness, cancels) or *drops*
one whose worker died. A worker whose claim fails (recalled, dropped) skips the batch; a result
for a batch the engine no longer holds is ignored. So each job is recorded once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from generation.render import AddOnFile, ModelSource
from generation.rendering import EncodedPng, RenderMeta

ASSIGNED, STARTED = "assigned", "started"
WORKER_GROUP, ENGINE_GROUP = "worker", "engine"
ENGINE_CONSUMER = "engine"


@dataclass(frozen=True)
class Keys:
    prefix: str = "easel"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    def work(self, name: str) -> str:
        return f"{self.prefix}:work:{name}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}"

    @property
    def batch_pattern(self) -> str:
        return f"{self.prefix}:batch:*"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"

    @property
    def progress(self) -> str:
        return f"{self.prefix}:progress"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}:cancel"

    @property
    def cancelled(self) -> str:
        return f"{self.prefix}:cancelled"

    @property
    def models(self) -> str:
        return f"{self.prefix}:models"

    def addon(self, sha256: str) -> str:
        """A LoRA or embedding file's bytes, by its hash (``cluster.addon_share``)."""
        return f"{self.prefix}:addon:{sha256}"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass(frozen=True)
class Ticket:
    """One job of a batch, with everything a worker needs and nothing from the database."""

    meta: RenderMeta
    model: ModelSource
    upscaler: ModelSource | None = None
    init_png: bytes | None = None
    mask_png: bytes | None = None  # inpaint jobs: the stored mask
    refiner: ModelSource | None = None  # refined jobs: the refiner (absent from older servers)
    # LoRA and embeddings: name, kind, the engine's path and hash; the bytes travel separately
    # (``cluster.addon_share``), once per file.
    addons: tuple[AddOnFile, ...] = ()

    @property
    def job_id(self) -> str:
        return self.meta.job_id

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta.to_dict(),
            "model": asdict(self.model),
            "upscaler": asdict(self.upscaler) if self.upscaler else None,
            "init_png": _b64(self.init_png),
            "mask_png": _b64(self.mask_png),
            "refiner": asdict(self.refiner) if self.refiner else None,
            "addons": [asdict(file) for file in self.addons],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ticket:
        upscaler, refiner = data.get("upscaler"), data.get("refiner")
        return cls(
            meta=RenderMeta.from_dict(data["meta"]),
            model=ModelSource(**data["model"]),
            upscaler=ModelSource(**upscaler) if upscaler else None,
            init_png=_unb64(data.get("init_png")),
            mask_png=_unb64(data.get("mask_png")),
            refiner=ModelSource(**refiner) if refiner else None,
            addons=tuple(AddOnFile(**file) for file in data.get("addons") or ()),
        )


@dataclass(frozen=True)
class BatchOrder:
    """A batch as it sits in a worker's stream."""

    batch_id: str
    tickets: tuple[Ticket, ...]

    def encode(self) -> dict[str, bytes]:
        body = {"batch_id": self.batch_id, "tickets": [t.to_json() for t in self.tickets]}
        return {"batch": json.dumps(body).encode("utf-8")}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> BatchOrder:
        body = json.loads(fields[b"batch"])
        return cls(body["batch_id"], tuple(Ticket.from_json(t) for t in body["tickets"]))


@dataclass(frozen=True)
class Outcome:
    """What became of one job: "succeeded" (with its PNG files), "failed" (with the reason)
    or "interrupted" (cancelled, or the worker is stopping)."""

    batch_id: str
    job_id: str
    worker: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    pngs: tuple[EncodedPng, ...] = ()

    def encode(self) -> dict[str, bytes]:
        meta = {
            "kind": "outcome",
            "batch_id": self.batch_id,
            "job_id": self.job_id,
            "worker": self.worker,
            "status": self.status,
            "seconds": self.seconds,
            "error": self.error,
            "images": [[p.width, p.height, p.seed] for p in self.pngs],
        }
        fields = {"meta": json.dumps(meta).encode("utf-8")}
        for index, png in enumerate(self.pngs):
            fields[f"png{index}"] = png.data
        return fields


@dataclass(frozen=True)
class Started:
    """A worker began rendering a batch it claimed."""

    batch_id: str
    worker: str


ResultEntry = Outcome | Started


def decode_result(fields: dict[bytes, bytes]) -> ResultEntry:
    meta = json.loads(fields[b"meta"])
    if meta["kind"] == "started":
        return Started(meta["batch_id"], meta["worker"])
    pngs = tuple(
        EncodedPng(fields[f"png{index}".encode()], width, height, seed)
        for index, (width, height, seed) in enumerate(meta["images"])
    )
    return Outcome(
        batch_id=meta["batch_id"],
        job_id=meta["job_id"],
        worker=meta["worker"],
        status=meta["status"],
        seconds=float(meta["seconds"]),
        error=meta.get("error"),
        pngs=pngs,
    )


def started_fields(batch_id: str, worker: str) -> dict[str, bytes]:
    meta = {"kind": "started", "batch_id": batch_id, "worker": worker}
    return {"meta": json.dumps(meta).encode("utf-8")}


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's heartbeat: who it is, what it has, what it is doing."""

    name: str
    device: str = "cpu"
    memory_gb: float | None = None  # the device's memory (GPU), if known
    free_memory_gb: float | None = None
    can_load: tuple[str, ...] | None = None  # registered models it can load; None = unknown
    loaded: tuple[str, ...] = ()
    state: str = "idle"  # idle | rendering
    current: tuple[str, ...] = ()  # job ids being rendered
    jobs_per_minute: float = 0.0
    host: str = ""
    pid: int = 0
    started_at: float = 0.0  # unix time
    beat: int = 0  # counts heartbeats since the worker started
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str | bytes) -> WorkerInfo:
        data = json.loads(text)
        for key in ("can_load", "loaded", "current"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        known = {f.name for f in dataclass_fields(cls)}
        extra = dict(data.pop("extra", None) or {})
        extra.update({k: data.pop(k) for k in list(data) if k not in known})  # a newer worker's
        return cls(**data, extra=extra)


def progress_message(
    batch_id: str, job_ids: list[str], step: int, total: int, preview: bytes | None
) -> str:
    return json.dumps(
        {"batch": batch_id, "jobs": job_ids, "step": step, "total": total, "preview": _b64(preview)}
    )


def parse_progress(text: str | bytes) -> tuple[str, list[str], int, int, bytes | None]:
    data = json.loads(text)
    return (
        data["batch"],
        list(data["jobs"]),
        int(data["step"]),
        int(data["total"]),
        _unb64(data.get("preview")),
    )
