"""Start-up benchmark: how soon ``easel serve`` answers, and how soon its model is ready.

Starts a real ``easel serve`` (SQLite, demo model, web page on a free loopback port) on a fresh
data directory and on the same one again (a restart), ``--runs`` times each, and prints the
median seconds from the process start to:

* **answers**: the first HTTP answer of ``/sdapi/v1/progress`` (the page and APIs work);
* **ready**: ``/api/status`` says the model is loaded (torch and diffusers imported, the default
  model on its device), so the first job starts at once.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_start.py
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_start.py --tree /tmp/old-checkout   # compare

``--tree`` runs another checkout's code with this interpreter (its own ``bot/`` first on the
path), for a before/after comparison on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PORT_LINE = "Easel web page: "


def command(tree: Path | None) -> list[str]:
    if tree is None:
        return [sys.executable, "-c", "from bot.cli import main; main()"]
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from bot.cli import main; main()"
    return [sys.executable, "-c", code]


def get(url: str) -> bytes | None:
    try:
        with OPENER.open(url, timeout=2) as response:
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError):
        return None


def one_start(data_dir: Path, tree: Path | None, log: Path) -> tuple[float, float]:
    config = data_dir.parent / "easel.toml"
    config.write_text(f'data_dir = "{data_dir}"\n[web]\nhost = "127.0.0.1"\nport = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env["HF_HUB_OFFLINE"] = "1"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command(tree), "--config", str(config), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tree or ROOT,
        )
        try:
            url = ""
            answered = ready = 0.0
            deadline = started + 300
            while time.monotonic() < deadline and not ready:
                if process.poll() is not None:
                    raise SystemExit(f"easel serve exited:\n{log.read_text()[-2000:]}")
                if not url:
                    text = log.read_text(errors="replace")
                    if PORT_LINE in text:
                        url = text.split(PORT_LINE, 1)[1].split()[0]
                if url and not answered and get(f"{url}/sdapi/v1/progress") is not None:
                    answered = time.monotonic() - started
                if answered:
                    status = get(f"{url}/api/status")
                    if status is None:  # an older tree: ready once the engine said so
                        text = log.read_text(errors="replace")
                        ready = answered if "Easel engine running" in text else 0.0
                    elif not json.loads(status)["loading"]:
                        ready = time.monotonic() - started
                time.sleep(0.02)
            if not ready:
                raise SystemExit("easel serve did not get ready within 300 s")
            return answered, ready
        finally:
            process.terminate()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", type=Path, help="another checkout to measure (before/after)")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"fresh data dir": [], "restart": []}
    with tempfile.TemporaryDirectory(prefix="easel-bench-start-") as tmp:
        for run in range(args.runs):
            data_dir = Path(tmp) / f"run{run}" / "data"
            data_dir.parent.mkdir(parents=True)
            log = data_dir.parent / "serve.log"
            rows["fresh data dir"].append(one_start(data_dir, args.tree, log))
            rows["restart"].append(one_start(data_dir, args.tree, log))
    print(f"easel serve start-up ({args.tree or ROOT}), median of {args.runs}")
    print(f"{'':16} {'answers':>8} {'ready':>8}")
    for name, values in rows.items():
        answers = statistics.median(v[0] for v in values)
        ready = statistics.median(v[1] for v in values)
        print(f"{name:16} {answers:7.2f}s {ready:7.2f}s")


if __name__ == "__main__":
    main()
