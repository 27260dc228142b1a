"""The engine SIGKILLed while four workers render, then started again: no job lost, none done
twice. The engine is a real ``easel serve`` process (a SIGKILL gives it no chance to tidy up);
the workers go on rendering meanwhile and their results wait in Redis for the next engine."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster.harness import write_config
from tests.reliability.crash_harness import (
    REPO_ROOT,
    EaselProcess,
    StoredJob,
    call,
    easel_command,
    read_jobs,
)
from tests.servers import RedisServer

START_TIMEOUT = 180.0
JOBS = 32

pytestmark = pytest.mark.timeout(600)


def until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stored(db: Path) -> dict[str, StoredJob]:
    return read_jobs(db) if db.exists() else {}


def test_the_engine_killed_mid_run_loses_nothing_and_repeats_nothing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    data_dir = tmp_path / "data"
    config = write_config(
        tmp_path / "easel.toml", data_dir, redis_server.url, f"t{uuid.uuid4().hex[:10]}", web=True
    )
    db = data_dir / "easel.db"
    engine = EaselProcess(config, tmp_path / "engine-1.log")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        engine.start(START_TIMEOUT)
        for index in range(4):
            log = (tmp_path / f"w{index}.log").open("wb")
            command = [*easel_command(), "--config", str(config), "worker"]
            command += ["--name", f"w{index}", "--stand-in", "0.3"]
            workers.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
            )
        ids = []
        for index in range(JOBS):
            body = {"prompt": f"crash {index}", "width": 64, "height": 64, "steps": 4}
            status, reply = call("POST", f"{engine.url}/api/jobs", body)
            assert status == 202, reply
            ids.append(reply["job"]["id"])

        def some_done() -> bool:
            done = [job for job in stored(db).values() if job.status == "succeeded"]
            return len(done) >= 6

        until(some_done, 120, "the workers to finish a few jobs")
        engine.kill()  # mid-run: batches are with the workers, results keep coming
        time.sleep(1.0)
        engine = EaselProcess(config, tmp_path / "engine-2.log")
        engine.start(START_TIMEOUT)

        def all_done() -> bool:
            jobs = stored(db)
            return all(jobs.get(i) is not None and jobs[i].status == "succeeded" for i in ids)

        until(all_done, 180, "every job to succeed after the restart")
        try:
            assert engine.stop(60) == 0
        except AssertionError:
            raise AssertionError(engine.log_text()[-4000:]) from None
        jobs = read_jobs(db)
        assert [jobs[i].status for i in ids] == ["succeeded"] * JOBS
        assert all(len(jobs[i].images) == 1 for i in ids)  # recorded once
        assert all(jobs[i].attempt == 1 for i in ids), {i: jobs[i].attempt for i in ids}
        assert "still with their workers" in engine.log_text()
    finally:
        engine.close()
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
