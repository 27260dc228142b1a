"""The crash campaign: kill -9 ``easel serve`` at chosen points, restart it, lose nothing.

Kinds of kill, each followed by a restart on the same data dir:

* ``admission``: a burst of ``POST /api/jobs`` is sent at once; SIGKILL right after the k-th
  202 (plus a random delay of a few ms), while the rest are still being admitted.
* ``mid-generation``: after the first progress event of a render (plus a random delay).
* ``mid-write``: the instant a temporary image file is created (a PNG half written).
* ``image-written``: the instant a finished PNG is renamed into place (plus a delay of a few
  ms), before its job is recorded as succeeded; or, with ``until_recorded``, once the database
  shows the job succeeded but not yet delivered (the file is polled read-only). Where it landed
  is read back from the database and reported.

Then one last start: every job must finish and be delivered, each job and image is fetched
through the API, the server is stopped cleanly and the files are checked. Problems are
collected, not raised at once, so one run reports all of them with its figures.
"""

from __future__ import annotations

import hashlib
import http.client
import queue
import random
import re
import sqlite3
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation.metadata import job_id_from_png
from tests.reliability.crash_harness import (
    EaselProcess,
    EventStream,
    HarnessError,
    ShardWatch,
    StoredJob,
    call,
    fetch,
    integrity_check,
    read_jobs,
    temp_files,
)

KINDS = ("admission", "mid-generation", "mid-write", "image-written")
TERMINAL = ("succeeded", "failed", "cancelled")
START_TIMEOUT = 180.0  # import torch + diffusers on a busy 2-core box
WAIT_TIMEOUT = 120.0  # for a render to reach the point a kill waits for
DRAIN_TIMEOUT = 300.0  # for the last start to finish every job
_DELIVERED = re.compile(r"web: delivered job (\w+)")
_GAVE_UP = "gave up after"


@dataclass(frozen=True)
class Kill:
    kind: str
    delay: float = 0.0  # seconds between the trigger and SIGKILL
    burst: int = 10  # admission: requests sent at once
    after_accepted: int = 1  # admission: kill after this many 202s
    until_recorded: bool = False  # image-written: wait until the job is recorded, undelivered


@dataclass
class KillResult:
    kill: Kill
    landed: str  # where the kill landed, in words
    on_target: bool  # it landed in the window its kind aims at
    integrity: str = ""


@dataclass
class Outcome:
    seed: int
    kills: list[KillResult] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    final: dict[str, StoredJob] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)
    rewritten: set[str] = field(default_factory=set)  # delivered_at changed after being set
    start_seconds: list[float] = field(default_factory=list)
    temp_left_by_kills: int = 0
    temp_after_restart: int = 0  # of those, still there once the next start was up
    integrity_final: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> list[str]:
        return sorted({j for j, n in self.deliveries.items() if n > 1} | self.rewritten)


def ci_plan() -> list[Kill]:
    return [
        Kill("admission", burst=10, after_accepted=2),
        Kill("mid-generation"),
        Kill("mid-write"),
        Kill("image-written", until_recorded=True),
    ]


def full_plan(rng: random.Random, kills: int = 20) -> list[Kill]:
    kinds = [KINDS[i % len(KINDS)] for i in range(kills)]
    rng.shuffle(kinds)
    plan = []
    for kind in kinds:
        if kind == "admission":
            burst = rng.randint(4, 16)
            delay = rng.choice([0.0, rng.uniform(0.0, 0.01)])
            after = rng.randint(1, burst // 2)
            plan.append(Kill(kind, delay=delay, burst=burst, after_accepted=after))
        elif kind == "mid-generation":
            plan.append(Kill(kind, delay=rng.uniform(0.0, 0.3)))
        elif kind == "mid-write":
            plan.append(Kill(kind))
        elif rng.random() < 0.5:
            plan.append(Kill(kind, until_recorded=True))
        else:
            plan.append(Kill(kind, delay=rng.choice([0.0, rng.uniform(0.0, 0.03)])))
    return plan


def write_config(path: Path, data_dir: Path, max_attempts: int) -> None:
    path.write_text(
        f'data_dir = "{data_dir}"\n'
        'log_level = "DEBUG"\n'  # the dispatcher logs each recorded delivery at DEBUG
        "[generation]\n"
        "cpu_threads = 1\n"
        f"max_attempts = {max_attempts}\n"
        "shutdown_grace_seconds = 30.0\n"
        "[limits]\n"
        "rate_per_minute = 100000.0\nburst = 1000\nmax_queued_per_user = 1000\n"
        "[web]\n"
        'host = "127.0.0.1"\nport = 0\n',
        encoding="utf-8",
    )


class Campaign:
    def __init__(
        self, data_dir: Path, work_dir: Path, *, seed: int, steps: int, max_attempts: int
    ) -> None:
        self.data_dir = data_dir
        self.db = data_dir / "easel.db"
        self.images = data_dir / "images"
        self.steps = steps
        self.max_attempts = max_attempts
        self.rng = random.Random(seed)
        self.out = Outcome(seed)
        self.config = work_dir / "easel.toml"
        self.logs = work_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        write_config(self.config, data_dir, max_attempts)
        self.server: EaselProcess | None = None
        self._submitted = 0
        self._delivered_at: dict[str, str] = {}

    # ------------------------------------------------------------------ running it

    def run(self, plan: list[Kill], *, retries: int = 0) -> Outcome:
        """Kill as planned; a kill that misses its window is tried again, ``retries`` times."""
        plan = list(plan)
        try:
            server = self._start()
            while plan:
                kill = plan.pop(0)
                result = self._kill(server, kill)
                if not result.on_target and retries > 0:
                    retries -= 1
                    plan.insert(0, kill)
                self._after_kill(result)
                left = temp_files(self.images)
                self.out.temp_left_by_kills += len(left)
                server = self._start()
                still = [p.name for p in left if p.exists()]
                self.out.temp_after_restart += len(still)
                if still:
                    self.out.problems.append(f"temp files not removed at start: {still}")
            self._finish(server)
        finally:
            if self.server is not None:
                self.server.close()
        return self.out

    def _start(self) -> EaselProcess:
        number = len(self.out.start_seconds) + 1
        self.server = EaselProcess(self.config, self.logs / f"serve-{number:02d}.log")
        self.out.start_seconds.append(self.server.start(START_TIMEOUT))
        return self.server

    def _body(self) -> dict[str, Any]:
        self._submitted += 1
        n = self._submitted
        return {"prompt": f"crash {n}", "width": 64, "height": 64, "steps": self.steps, "seed": n}

    def _submit(self, server: EaselProcess) -> str:
        status, body = call("POST", f"{server.url}/api/jobs", self._body())
        if status != 202:
            raise HarnessError(f"POST /api/jobs answered {status}: {body}")
        job_id: str = body["job"]["id"]
        self.out.accepted.add(job_id)
        return job_id

    def _kill(self, server: EaselProcess, kill: Kill) -> KillResult:
        if kill.kind == "admission":
            return self._kill_admission(server, kill)
        if kill.kind == "mid-generation":
            return self._kill_mid_generation(server, kill)
        return self._kill_on_write(server, kill)

    # ------------------------------------------------------------------ the kills

    def _kill_admission(self, server: EaselProcess, kill: Kill) -> KillResult:
        answers: queue.Queue[tuple[int | None, Any]] = queue.Queue()
        barrier = threading.Barrier(kill.burst)
        bodies = [self._body() for _ in range(kill.burst)]

        def post(body: dict[str, Any]) -> None:
            try:
                barrier.wait(timeout=30)
                answers.put(call("POST", f"{server.url}/api/jobs", body, timeout=30))
            except (OSError, http.client.HTTPException, threading.BrokenBarrierError):
                answers.put((None, None))  # the server died before answering

        threads = [threading.Thread(target=post, args=(b,), daemon=True) for b in bodies]
        for thread in threads:
            thread.start()
        answered = accepted = 0
        for _ in range(kill.burst):
            status, body = answers.get(timeout=WAIT_TIMEOUT)
            answered += status is not None
            accepted += self._note_answer(status, body)
            if accepted >= kill.after_accepted:
                break
        if kill.delay:
            time.sleep(kill.delay)
        server.kill()
        at_kill = answered
        for thread in threads:
            thread.join(timeout=60)
        while not answers.empty():  # answers already on their way when it died count too
            status, body = answers.get()
            answered += status is not None
            accepted += self._note_answer(status, body)
        never = kill.burst - answered
        return KillResult(
            kill,
            f"{at_kill} of {kill.burst} answered at the kill (+{kill.delay * 1000:.1f} ms), "
            f"{never} never answered, {accepted} accepted",
            on_target=never > 0,
        )

    def _note_answer(self, status: int | None, body: Any) -> int:
        if status is None:
            return 0
        if status != 202:
            self.out.problems.append(f"a POST in the burst was answered {status}: {body}")
            return 0
        self.out.accepted.add(body["job"]["id"])
        return 1

    def _kill_mid_generation(self, server: EaselProcess, kill: Kill) -> KillResult:
        stream = EventStream(server.url, timeout=WAIT_TIMEOUT)
        try:
            self._submit(server)  # so there is always something to render
            progress = None
            for name, data in stream.events():
                if name == "progress" and data["step"] >= 1:
                    progress = data
                    break
            if progress is None:
                raise HarnessError("the event stream ended before any progress")
            time.sleep(kill.delay)
            server.kill()
        finally:
            stream.close()
        job = read_jobs(self.db).get(progress["job_id"])
        state = job.status if job else "missing"
        return KillResult(
            kill,
            f"job {progress['job_id']} at step {progress['step']}/{progress['total']} "
            f"(+{kill.delay * 1000:.0f} ms), stored as {state}",
            on_target=state == "running",
        )

    def _kill_on_write(self, server: EaselProcess, kill: Kill) -> KillResult:
        temp = kill.kind == "mid-write"
        watch = ShardWatch(self.images)
        try:
            self._submit(server)
            path = watch.wait_for(
                (lambda name: name.startswith(".tmp-"))
                if temp
                else (lambda name: name.endswith(".png") and not name.startswith(".")),
                WAIT_TIMEOUT,
            )
            if path is None:
                raise HarnessError(f"no image was written within {WAIT_TIMEOUT:.0f} s")
            if kill.until_recorded:
                wait_until_recorded(self.db, job_id_from_png(path.read_bytes()) or "")
            elif kill.delay:
                time.sleep(kill.delay)
            server.kill()
        finally:
            watch.close()
        if temp:
            size = path.stat().st_size if path.exists() else None
            left = "gone" if size is None else f"left behind, {size} bytes"
            return KillResult(kill, f"temp file {left}", on_target=size is not None)
        job_id = job_id_from_png(path.read_bytes())
        job = read_jobs(self.db).get(job_id or "")
        if job is None:
            where = "image written, its job unknown"
        elif job.status == "running":
            where = "image written, job not yet recorded"
        elif job.delivered_at is None:
            where = f"job recorded {job.status}, not yet delivered"
        else:
            where = "already delivered (too late)"
        when = "once recorded" if kill.until_recorded else f"+{kill.delay * 1000:.1f} ms"
        on_target = job is not None and job.delivered_at is None
        if kill.until_recorded:
            on_target = on_target and job is not None and job.status == "succeeded"
        return KillResult(kill, f"{where} ({when})", on_target=on_target)

    # ------------------------------------------------------------------ checks

    def _after_kill(self, result: KillResult) -> None:
        result.integrity = integrity_check(self.db)
        self.out.kills.append(result)
        jobs = read_jobs(self.db)
        lost = sorted(self.out.accepted - jobs.keys())
        if lost:
            self.out.problems.append(
                f"accepted jobs missing after a {result.kill.kind} kill: {lost}"
            )
        self._note_deliveries(jobs)

    def _note_deliveries(self, jobs: dict[str, StoredJob]) -> None:
        for job in jobs.values():
            if job.delivered_at is None:
                continue
            first = self._delivered_at.setdefault(job.id, job.delivered_at)
            if first != job.delivered_at:
                self.out.rewritten.add(job.id)

    def _finish(self, server: EaselProcess) -> None:
        self._drain(server)
        for job_id in sorted(self.out.accepted):
            self._check_through_api(server, job_id)
        code = server.stop(timeout=120)
        if code != 0 or "stopped cleanly" not in server.log_text():
            self.out.problems.append(f"the last clean stop exited with {code}")
        self.out.integrity_final = integrity_check(self.db, read_only=False)
        self.out.final = read_jobs(self.db)
        self._note_deliveries(self.out.final)
        for log in sorted(self.logs.glob("serve-*.log")):
            text = log.read_text(encoding="utf-8", errors="replace")
            self.out.deliveries.update(_DELIVERED.findall(text))
        self._check_files()

    def _drain(self, server: EaselProcess) -> None:
        """Wait until every stored job is finished and delivered (polling the API)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            waiting = [
                f"{job['id']} {job['status']}"
                for job in self._all_jobs(server)
                if job["status"] not in TERMINAL or job["delivered_at"] is None
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                self.out.problems.append(f"never finished or delivered: {waiting}")
                return
            time.sleep(0.25)

    def _all_jobs(self, server: EaselProcess) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        while True:
            status, body = call("GET", f"{server.url}/api/jobs?limit=200&offset={len(jobs)}")
            if status != 200:
                raise HarnessError(f"GET /api/jobs answered {status}: {body}")
            jobs += body["jobs"]
            if len(body["jobs"]) < 200:
                return jobs

    def _check_through_api(self, server: EaselProcess, job_id: str) -> None:
        status, job = call("GET", f"{server.url}/api/jobs/{job_id}")
        if status != 200:
            self.out.problems.append(f"GET /api/jobs/{job_id} answered {status}: {job}")
            return
        if job["status"] not in TERMINAL or job["delivered_at"] is None:
            self.out.problems.append(
                f"{job_id} is {job['status']}, delivered {job['delivered_at']}"
            )
        if job["status"] == "succeeded" and len(job["images"]) != job["count"]:
            self.out.problems.append(f"{job_id} succeeded with {len(job['images'])} images")
        if job["status"] == "failed" and _GAVE_UP not in (job["error"] or ""):
            self.out.problems.append(f"{job_id} failed for another reason: {job['error']}")
        for url in job["images"]:
            code, data = fetch(f"{server.url}{url}")
            sha = url.rsplit("/", 1)[-1].removesuffix(".png")
            if code != 200 or hashlib.sha256(data).hexdigest() != sha:
                self.out.problems.append(f"{job_id}: {url} answered {code} or wrong bytes")

    def _check_files(self) -> None:
        left = temp_files(self.images)
        if left:
            self.out.problems.append(f"temp files left after the clean stop: {left}")
        for job in self.out.final.values():
            for sha in job.images:
                path = self.images / sha[:2] / f"{sha}.png"
                if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                    self.out.problems.append(f"{job.id}: image file {path.name} missing or torn")


def wait_until_recorded(db: Path, job_id: str, timeout: float = 30.0) -> None:
    """Poll the file (read-only) until ``job_id`` is finished or delivered, then return at once.

    Recording a job and recording its delivery are two commits a few ms apart; a read every
    ~0.1 ms sees the first before the second almost always.
    """
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT status, delivered_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is not None and (row[0] in TERMINAL or row[1] is not None):
                return
    finally:
        connection.close()


# ---------------------------------------------------------------------- the summary


def summary(out: Outcome, *, steps: int, max_attempts: int) -> str:
    final = [out.final[j] for j in sorted(out.accepted) if j in out.final]
    statuses = Counter(job.status for job in final)
    reasons = Counter((job.error or "")[:40] for job in final if job.status == "failed")
    unanswered = sorted(out.final.keys() - out.accepted)
    kinds = Counter(result.kill.kind for result in out.kills)
    restarts = out.start_seconds[1:] or out.start_seconds
    integrity_ok = sum(result.integrity == "ok" for result in out.kills)
    on_target = sum(result.on_target for result in out.kills)
    lines = [
        f"crash campaign: seed {out.seed}, {len(out.kills)} kills (SIGKILL), demo model "
        f"64x64/{steps} steps, cpu_threads=1, max_attempts={max_attempts}",
        "",
        "| # | kill | where it landed | integrity_check |",
        "|---|---|---|---|",
    ]
    for number, result in enumerate(out.kills, 1):
        lines.append(f"| {number} | {result.kill.kind} | {result.landed} | {result.integrity} |")
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        "| kills by kind | " + ", ".join(f"{k} {kinds[k]}" for k in KINDS if kinds[k]) + " |",
        f"| kills that landed in their window | {on_target} of {len(out.kills)} |",
        f"| jobs accepted (202) | {len(out.accepted)} |",
        f"| stored, never answered (in flight at a kill) | {len(unanswered)} |",
        f"| succeeded / failed / cancelled | {statuses['succeeded']} / {statuses['failed']} / "
        f"{statuses['cancelled']} |",
        "| failure reasons | "
        + (", ".join(f"{n}x {reason!r}" for reason, n in reasons.items()) or "none")
        + " |",
        f"| accepted jobs not finished or lost | {len(out.accepted) - sum(statuses.values())} |",
        f"| delivered (accepted jobs) | {sum(job.delivered_at is not None for job in final)} |",
        f"| duplicate deliveries | {len(out.duplicates)} |",
        f"| restart time p50 / max | {statistics.median(restarts):.1f} s / {max(restarts):.1f} s "
        f"({len(restarts)} restarts) |",
        f"| temp files left by kills / after restart | {out.temp_left_by_kills} / "
        f"{out.temp_after_restart} |",
        f"| integrity_check after each kill | ok {integrity_ok} of {len(out.kills)} |",
        f"| integrity_check at the end | {out.integrity_final} |",
        f"| problems | {len(out.problems)} |",
    ]
    lines += [f"  problem: {problem}" for problem in out.problems]
    return "\n".join(lines)
