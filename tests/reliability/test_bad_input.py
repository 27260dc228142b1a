"""Bad input, end to end: the /draw grammar fuzzed into the real service, hostile uploads,
extreme numbers and malformed HTTP bodies on both APIs.

Every bad input must get a clear answer (the service's ``Rejected`` with a message; over HTTP a
4xx whose body names the problem, never a 500), must leave no job behind (no row, nothing in
the queue), and the worker must still render a normal job afterwards.

Full mode (``EASEL_FULL_CAMPAIGN=1 .venv/bin/python -m pytest tests/reliability/test_bad_input.py
-s -k fuzz``) runs the fuzzers with 5,000 inputs each and prints how many were accepted/refused.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.app import App
from bot.grammar import parse_draw
from generation.errors import EaselError, ImageRejected, Rejected
from generation.requests import Origin
from tests.conftest import OWNER, AppFactory, WebFactory, make_config
from tests.e2e.engine_helpers import small, wait_finished
from tests.web.conftest import client_app

FULL = os.environ.get("EASEL_FULL_CAMPAIGN") == "1"
FUZZ_EXAMPLES = 5000 if FULL else 120
CPU = {"cpu_threads": 1, "shutdown_grace_seconds": 5.0}
UNLIMITED = {"burst": 10**6, "rate_per_minute": 10**6, "max_queued_per_user": 10**6,
             "max_queue": 10**6}  # fmt: skip
MAX_MESSAGE = 600  # a refusal is a sentence or two: it must fit a chat message


def origin(platform: str = "cli", user: str = "fuzzer") -> Origin:
    return Origin(platform=platform, scope_id=f"{platform}-scope", user_id=user, user_name=user)


def readable(error: EaselError) -> str:
    message = str(error)
    assert message.strip() and message == error.message, repr(error)
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]}..."
    return message


async def job_rows(app: App) -> int:
    """Job rows not yet finished (with no worker running, that is every row)."""
    return await app.store.count_queued(include_running=True)


# ---------------------------------------------------------------------- the /draw grammar, fuzzed

_OPTIONS = ["no", "seed", "steps", "cfg", "guidance", "ar", "aspect", "size", "sampler", "model",
            "n", "count", "batch", "strength", "SEED", "bogus", "s", "x" * 300]  # fmt: skip
_VALUES = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "-0",
            "0",
            "1e-400",
            "7,5",
            ".5",
            "1000000000x64",
            "64x1000000000",
            "0x0",
            "64×64",
            "٣x٣",
            "3:2",
            "100:1",
            "1:0",
            "-1",
            "4294967296",
            "Euler a",
            "DPM++ 2M Karras",
            "nope",
            '"quoted --seed 5"',
            "“curly”",
            "a|b",
            "[a|b]",
        ]
    ),
    st.text(max_size=40),
    st.integers(min_value=1000, max_value=100_000).map(lambda n: "9" * n),
)
_PIECES = st.one_of(
    st.text(max_size=60),  # any code point the strategy draws: controls, RTL, emoji, combining
    st.sampled_from(
        [
            "/draw",
            "/draw@Bot",
            "/imagine",
            "|",
            '"',
            "“",
            "”",
            "\\",
            "—",
            "–",
            "--",
            "\x00",
            "\x1b[31m",
            "\u202e",
            "\u200b",
            "\ud800",
            "\udfff",
            "\r\n",
            "\t",
            "a castle at dusk",
        ]
    ),
    st.builds(
        lambda dash, name, eq, value: f"{dash}{name}{eq}{value}",
        st.sampled_from(["--", "—", "–", "-"]),
        st.sampled_from(_OPTIONS),
        st.sampled_from([" ", "=", ""]),
        _VALUES,
    ),
    st.integers(min_value=1000, max_value=100_000).map(lambda n: "x" * n),
)
_COMMANDS = st.lists(_PIECES, max_size=8).map(" ".join)
_PLATFORMS = st.sampled_from(["cli", "web", "api", "discord", "telegram"])


def _run_fuzz(
    data_dir: Path, name: str, body: Callable[[asyncio.Runner, App], Counter[str]]
) -> Counter[str]:
    """Run a hypothesis test ``body(runner, app)`` against one App with no worker."""
    config = make_config(data_dir, generation=CPU, limits=UNLIMITED)
    with asyncio.Runner() as runner:
        app = App.from_config(config)
        runner.run(app.start(worker=False))  # the queue is the worker's only input
        try:
            outcomes = body(runner, app)
        finally:
            runner.run(app.stop())
    total = sum(outcomes.values())
    print(f"\n{name}: {total} inputs tried: {dict(sorted(outcomes.items()))}")
    assert total >= FUZZ_EXAMPLES // 2 and outcomes["accepted"] > 0
    return outcomes


def _submit(
    runner: asyncio.Runner, app: App, outcomes: Counter[str], make: Callable[[], Any]
) -> None:
    """One input: ``make()`` builds the request (may refuse), then the service admits or refuses."""
    queued, rows = len(app.queue), runner.run(job_rows(app))
    try:
        platform, request = make()
        runner.run(app.service.draw(origin(platform), request))
    except Rejected as error:
        readable(error)
        outcomes[f"refused: {type(error).__name__}"] += 1
        assert len(app.queue) == queued and runner.run(job_rows(app)) == rows
    else:
        outcomes["accepted"] += 1
        assert len(app.queue) == queued + 1 and runner.run(job_rows(app)) == rows + 1


FUZZ_TIMEOUT = pytest.mark.timeout(3600 if FULL else 300)
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@FUZZ_TIMEOUT
def test_fuzzed_draw_commands_are_accepted_or_refused_with_a_reason(data_dir: Path) -> None:
    """grammar -> service.draw: ``Accepted`` (one queued job more) or ``Rejected`` (nothing
    queued, a readable message of chat size); any other exception fails the test."""

    def body(runner: asyncio.Runner, app: App) -> Counter[str]:
        outcomes: Counter[str] = Counter()

        @FUZZ_SETTINGS
        @given(text=_COMMANDS, platform=_PLATFORMS)
        def one(text: str, platform: str) -> None:
            _submit(runner, app, outcomes, lambda: (platform, parse_draw(text)))

        one()
        return outcomes

    _run_fuzz(data_dir, "/draw fuzz (grammar -> service.draw)", body)


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("/draw a cat --size 1000000000x1000000000", "far larger than any server allows"),
        ("/draw a cat --size 999999x999999", "larger than this service allows"),
        (
            "/draw a cat --steps 10000",
            "Steps 10000 is above the limit: this service allows at most",
        ),
        ("/draw a cat --n 999", "Count 999 is above the limit: this service allows at most"),
        ("/draw a cat --cfg -1", "--cfg is out of range"),
        ("/draw a cat --cfg nan", "--cfg must be a number"),
        ("/draw a cat --cfg 1e999", "--cfg is out of range"),
        ("/draw a cat --seed " + "9" * 5000, "(5,000 characters)"),
        ("/draw a cat --sampler Euler z", "Unknown sampler 'Euler z'"),
        ("/draw a cat --sampler " + "z" * 5000, "(5,000 characters)"),
        ("/draw a cat --model nope", "Unknown model 'nope'. Available: demo"),
        ("/draw a cat --model " + "m" * 100_000, "(100,000 characters)"),
        ("/draw " + "x" * 100_000, "Prompt is 100,000 characters; the limit is"),
        ("/draw a cat --" + "q" * 5000, "Unknown option --qqqq"),
        ('/draw a cat --ar "1000000000:1"', "too extreme"),
        ("/draw a \ud800 cat", "not valid text"),
        ("/draw a cat --no \udfff", "negative prompt contains a character"),
    ],
)
async def test_extreme_draw_commands_are_refused_with_a_short_reason(
    app_factory: AppFactory, command: str, words: str
) -> None:
    """What a chat user can type (Discord, Telegram, the page's prompt box): each refusal names
    the problem in a sentence that fits a chat message, and nothing is queued."""
    app = await app_factory(worker=False, generation=CPU)
    with pytest.raises(Rejected) as caught:
        await app.service.draw(origin("telegram"), parse_draw(command))
    assert words in readable(caught.value)
    assert len(app.queue) == 0 and await job_rows(app) == 0


# ---------------------------------------------------------------------- hostile images


def png(size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out, format="JPEG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


FRAMES = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # the first frame is red


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (64, 64), color) for color in FRAMES]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def gif_js_polyglot() -> bytes:
    """A GIF that is also valid JavaScript: ``GIF89a/*<binary>*/=1;alert(...)``."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), FRAMES[0]).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:8] = b"/*"  # the logical screen width (10799) opens a JS comment
    assert b"*/" not in data
    return bytes(data) + b"*/=1;alert('easel')//"


PAYLOADS = (b"PK\x03\x04", b"<script", b"alert(")
REFUSED_UPLOADS = {
    "bomb declaring 100000x100000": (bomb_png(100_000, 100_000), "too large to decode safely"),
    "bomb declaring 5000x5000": (bomb_png(5000, 5000), "5000x5000 pixels; the limit is"),
    "truncated PNG": (png()[:60], "could not be decoded"),
    "truncated JPEG": (jpeg()[:300], "could not be decoded"),
    "SVG": (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', "not an image"),
    "PDF": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
    "text named .png": (b"this is not a png, honest", "not an image"),
    "HTML": (b"<!doctype html><script>alert(1)</script>", "not an image"),
    "TIFF": (animated("TIFF"), "TIFF images are not accepted"),
    "empty file": (b"", "empty"),
}
ACCEPTED_UPLOADS = {
    "animated GIF": animated("GIF"),
    "APNG": animated("PNG"),
    "animated WebP": animated("WEBP"),
    "PNG + ZIP": png(color=FRAMES[0]) + b"PK\x03\x04" + b"\0" * 64,
    "PNG + HTML": png(color=FRAMES[0]) + b"<html><script>alert(1)</script></html>",
    "GIF + JS": gif_js_polyglot(),
}


def _stored_files(app: App) -> set[Path]:
    return {path for path in app.images.root.rglob("*") if path.is_file()}


async def test_hostile_uploads_are_refused_or_reduced_to_one_plain_frame(
    app_factory: AppFactory,
) -> None:
    app = await app_factory(generation=CPU)
    files = _stored_files(app)
    for name, (data, words) in REFUSED_UPLOADS.items():
        with pytest.raises(ImageRejected) as caught:
            await app.service.draw(origin("web"), small(init_image=data))
        assert words in readable(caught.value), name
    assert len(app.queue) == 0 and await job_rows(app) == 0
    assert _stored_files(app) == files  # nothing refused was written anywhere

    accepted = {}
    for name, data in ACCEPTED_UPLOADS.items():
        job = (await app.service.draw(origin("web"), small(init_image=data, steps=2))).job
        stored = app.images.read(str(job.init_image))
        for payload in PAYLOADS:
            assert payload not in stored, (name, payload)
        image = Image.open(io.BytesIO(stored))
        assert image.format == "PNG" and not getattr(image, "is_animated", False), name
        assert image.convert("RGB").getpixel((0, 0)) == FRAMES[0] or name == "animated WebP"
        accepted[name] = job.id
    for name, job_id in accepted.items():  # the worker renders each of them, and carries on
        job = await wait_finished(app, job_id)
        assert job.status == "succeeded" and len(job.images) == 1, (name, job.error)


_VALID = png()
_MUTATIONS = st.one_of(
    st.binary(max_size=2048),
    st.integers(0, len(_VALID)).map(lambda n: _VALID[:n]),
    st.tuples(st.integers(0, len(_VALID) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda t: _VALID[: t[0]] + t[1] + _VALID[t[0] + len(t[1]) :]
    ),
    st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)).map(lambda t: bomb_png(*t)),
    st.sampled_from(
        [data for data, _ in REFUSED_UPLOADS.values()] + list(ACCEPTED_UPLOADS.values())
    ),
)


@FUZZ_TIMEOUT
def test_fuzzed_uploads_are_accepted_or_refused_as_images(data_dir: Path) -> None:
    """Random bytes, truncations, byte flips and declared sizes as the init image."""

    def body(runner: asyncio.Runner, app: App) -> Counter[str]:
        outcomes: Counter[str] = Counter()

        @FUZZ_SETTINGS
        @given(data=_MUTATIONS)
        def one(data: bytes) -> None:
            _submit(runner, app, outcomes, lambda: ("web", small(init_image=data, seed=None)))

        one()
        return outcomes

    outcomes = _run_fuzz(data_dir, "upload fuzz (bytes -> service.draw)", body)
    assert set(outcomes) <= {"accepted", "refused: ImageRejected"}


# ---------------------------------------------------------------------- the upload cap


def padded_png(megabytes: float) -> bytes:
    """A valid PNG of about ``megabytes`` MB (bytes after IEND are ignored by decoders)."""
    data = png()
    return data + b"\0" * (int(megabytes * 1024 * 1024) - len(data))


async def test_the_upload_cap_follows_the_front_end_it_came_from(web_factory: WebFactory) -> None:
    """Each front end passes its own cap to the Service (web.max_upload_mb, discord.
    max_upload_mb, 10 MB for Telegram) and the Service enforces the one it is given: a cap
    above 10 MB is honoured, never cut back to a fixed 10 MB."""
    client = await web_factory(
        worker=False, generation=CPU, web={"max_upload_mb": 12}, discord={"max_upload_mb": 15}
    )
    app = client_app(client)
    eleven = padded_png(11)
    mb = 1024 * 1024
    await app.service.draw(origin("discord"), small(init_image=eleven), max_upload_bytes=15 * mb)
    with pytest.raises(ImageRejected) as default:  # what Telegram passes
        await app.service.draw(origin("telegram"), small(init_image=eleven))
    assert "the limit is 10 MB" in readable(default.value)
    with pytest.raises(ImageRejected) as discord:
        await app.service.draw(
            origin("discord"), small(init_image=padded_png(16)), max_upload_bytes=15 * mb
        )
    assert "the limit is 15 MB" in readable(discord.value)
    assert len(app.queue) == 1

    # The web passes web.max_upload_mb: 11 MB in, 13 MB refused with the limit named.
    too_big = base64.b64encode(padded_png(13)).decode()
    response = await client.post("/api/jobs", json={"prompt": "x", "init_image": too_big})
    assert response.status == 413 and "the limit is 12 MB" in await response.text()
    encoded = base64.b64encode(eleven).decode()
    response = await client.post("/api/jobs", json={"prompt": "x", "init_image": encoded})
    assert response.status == 202, await response.text()
    # A body over the server's cap (1.4 x 12 MB + 1 MB) is refused before it is read.
    huge = "A" * (18 * 1024 * 1024)
    for path, field in (
        ("/api/jobs", "init_image"),
        ("/sdapi/v1/img2img", "init_images"),
        ("/sdapi/v1/png-info", "image"),
    ):
        value: Any = [huge] if field == "init_images" else huge
        response = await client.post(path, json={"prompt": "x", field: value})
        assert response.status == 413, (path, await response.text())
        assert "larger than this server accepts" in json.dumps(await response.json())
    assert len(app.queue) == 2 and await job_rows(app) == 2  # the 11 MB ones only


# ---------------------------------------------------------------------- malformed HTTP bodies


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


RAW = {"Content-Type": "application/json"}
NOT_UTF8 = b'{"prompt": "caf\xe9"}'
DEEP = b"[" * 100_000 + b"]" * 100_000
SURROGATE = b'{"prompt": "a \\ud800 cat"}'
DIGITS = b'{"prompt": "x", "width": ' + b"9" * 5000 + b', "steps": ' + b"9" * 5000 + b"}"
BOMB, SVG = REFUSED_UPLOADS["bomb declaring 100000x100000"][0], REFUSED_UPLOADS["SVG"][0]
TRUNCATED = REFUSED_UPLOADS["truncated PNG"][0]

# (path, body: bytes sent raw or an object sent as JSON, status, words the message must hold)
EASEL_CASES: list[tuple[str, Any, int, str]] = [
    ("/api/jobs", NOT_UTF8, 400, "not UTF-8"),
    ("/api/jobs", DEEP, 400, "nested too deeply"),
    ("/api/jobs", SURROGATE, 400, "surrogate"),
    ("/api/jobs", DIGITS, 400, "not valid JSON"),
    ("/api/jobs", ["a cat"], 400, "JSON object"),
    ("/api/jobs", "a cat", 400, "JSON object"),
    ("/api/jobs", 42, 400, "JSON object"),
    ("/api/jobs", {}, 400, "prompt must be a string"),
    ("/api/jobs", {"prompt": ["a", "b"]}, 400, "prompt must be a string"),
    ("/api/jobs", {"prompt": "x", "steps": "10"}, 400, "steps must be a whole number"),
    ("/api/jobs", {"prompt": "x", "width": "wide"}, 400, "width must be a whole number"),
    ("/api/jobs", {"prompt": "x", "cfg": "7"}, 400, "cfg must be a number"),
    ("/api/jobs", b'{"prompt": "x", "cfg": 1e400}', 400, "CFG scale must be a number"),
    ("/api/jobs", b'{"prompt": "x", "width": 1e400}', 400, "width must be a whole number"),
    ("/api/jobs", {"prompt": "x", "width": 10**9, "height": 10**9}, 400, "larger than"),
    ("/api/jobs", {"prompt": "x", "width": 10**30, "height": 64}, 400, "larger than"),
    ("/api/jobs", {"prompt": "x", "steps": 10_000}, 400, "Steps 10000 is above"),
    ("/api/jobs", {"prompt": "x", "count": 999}, 400, "Count 999 is above"),
    ("/api/jobs", {"prompt": "x" * 100_000}, 400, "100,000 characters"),
    ("/api/jobs", {"prompt": "x", "sampler": "Bogus"}, 400, "Unknown sampler"),
    ("/api/jobs", {"prompt": "x", "model": "nope"}, 400, "Unknown model 'nope'"),
    ("/api/jobs", {"prompt": "x", "cfg": -1}, 400, "CFG scale -1 is below"),
    ("/api/jobs", {"prompt": "x", "seed": 10**30}, 400, "Seed must be between"),
    ("/api/jobs", {"prompt": "x", "aspect": "100:1"}, 400, "too extreme"),
    ("/api/jobs", {"prompt": "x", "init_image": "@@@"}, 400, "base64"),
    ("/api/jobs", {"prompt": "x", "init_image": 5}, 400, "init_image must be a string"),
    ("/api/jobs", {"prompt": "x", "init_image": "https://example.com/a.png"}, 400, "fetch"),
    ("/api/jobs", {"prompt": "x", "init_image": b64(SVG)}, 400, "not an image"),
    ("/api/jobs", {"prompt": "x", "init_image": b64(BOMB)}, 400, "too large to decode"),
    ("/api/jobs", {"prompt": "x", "init_image": b64(TRUNCATED)}, 400, "could not be decoded"),
    ("/api/jobs/abcdefgh/actions", {"action": "vary", "index": "one"}, 400, "index must be"),
    ("/api/jobs/abcdefgh/actions", [1], 400, "JSON object"),
    ("/api/admin/settings", {"allowed_models": 5}, 400, "allowed_models must be a list"),
    ("/api/admin/settings", {"burst": "lots"}, 400, "burst must be a whole number"),
    ("/api/admin/settings", b'{"max_steps": 1e400}', 400, "max_steps must be a whole number"),
    ("/api/admin/blocklist", {"add": "word"}, 400, "add must be a list of strings"),
    ("/api/admin/styles", {}, 400, "A style needs a name"),
    ("/api/admin/styles", {"add": {"name": "x"}}, 400, "needs a prompt or a negative prompt"),
    ("/api/admin/styles", {"remove": "nothing"}, 400, "no style 'nothing'"),
    ("/api/admin/models", {"name": "x"}, 400, "name and source are required"),
]
T2I, I2I, V1 = "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1"
A1111_CASES: list[tuple[str, Any, int, str]] = [
    (T2I, NOT_UTF8, 422, "not UTF-8"),
    (T2I, DEEP, 422, "nested too deeply"),
    (T2I, SURROGATE, 422, "surrogate"),
    (T2I, DIGITS, 422, "not valid JSON"),
    (T2I, ["x"], 422, "valid dict"),
    (T2I, "x", 422, "valid dict"),
    (T2I, {"prompt": "x", "steps": "ten"}, 422, "steps: value is not a valid integer"),
    (T2I, {"prompt": "x", "width": 1.5}, 422, "width"),
    (T2I, {"prompt": "x", "width": 10**9, "height": 10**9}, 422, "larger than"),
    (T2I, {"prompt": "x", "steps": 10_000}, 422, "Steps 10000 is above"),
    (T2I, {"prompt": "x", "batch_size": 999}, 422, "Count 999 is above"),
    (T2I, {"prompt": "x" * 100_000}, 422, "100,000 characters"),
    (T2I, {"prompt": "x", "sampler_name": "Bogus"}, 422, "Bogus"),
    (T2I, {"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}}, 422, "nope"),
    (T2I, {"prompt": "x", "override_settings": []}, 422, "override_settings"),
    (T2I, {"prompt": "x", "cfg_scale": -1}, 422, "CFG scale -1 is below"),
    (T2I, {"prompt": "x", "cfg_scale": "NaN"}, 422, "CFG scale must be a number"),
    (T2I, {"prompt": "x", "seed": 10**30}, 422, "Seed must be between"),
    (T2I, {}, 422, "prompt is empty"),
    (I2I, {"prompt": "x"}, 404, "Init image not found"),
    (I2I, {"prompt": "x", "init_images": "abc"}, 422, "init_images"),
    (I2I, {"prompt": "x", "init_images": ["%%%"]}, 422, "base64"),
    (I2I, {"prompt": "x", "init_images": [b64(BOMB)]}, 422, "too large to decode"),
    (I2I, {"prompt": "x", "init_images": [b64(SVG)]}, 422, "not an image"),
    (I2I, {"prompt": "x", "init_images": [b64(TRUNCATED)]}, 422, "could not be decoded"),
    (f"{V1}/options", [1], 422, "valid dict"),
    (f"{V1}/options", DEEP, 422, "nested too deeply"),
    (f"{V1}/options", {"sd_model_checkpoint": 5}, 422, "str type expected"),
    (f"{V1}/options", {"sd_model_checkpoint": "nope"}, 422, "not found"),
    (f"{V1}/png-info", [1], 422, "valid dict"),
    (f"{V1}/png-info", {"image": "%%%"}, 422, "base64"),
    # (png-info reads a PNG's text chunks only, never its pixels: a bomb is harmless there)
    (f"{V1}/png-info", {"image": b64(b"GIF89a, then nothing")}, 422, "not an image"),
]


def message_of(body: Any) -> str:
    """The readable part of an error body, in whichever shape the API uses."""
    if isinstance(body.get("detail"), list):  # FastAPI's validation list
        return "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in body["detail"])
    if isinstance(body.get("detail"), str):  # A1111's wrapper (or a bare route error)
        return body["detail"]
    return str(body["error"])  # Easel's {"error", "type"}


async def test_malformed_http_bodies_get_a_clear_4xx_and_queue_nothing(
    web_factory: WebFactory,
) -> None:
    client = await web_factory(generation=CPU)
    app = client_app(client)
    for path, body, status, words in EASEL_CASES + A1111_CASES:
        if isinstance(body, bytes):
            response = await client.post(path, data=body, headers=RAW)
        else:
            response = await client.post(path, json=body)
        text = await response.text()
        assert response.status == status, (path, str(body)[:80], text[:300])
        message = message_of(json.loads(text))
        assert words.lower() in message.lower(), (path, str(body)[:80], message)
        assert len(message) <= MAX_MESSAGE, (path, len(message))
    assert len(app.queue) == 0 and len(await app.store.list_jobs(limit=100)) == 0
    # The worker never saw any of it, and renders a normal request at once.
    normal = {"prompt": "a castle at dusk", "width": 64, "height": 64, "steps": 2}
    response = await client.post(T2I, json=normal)
    assert response.status == 200, await response.text()
    (image,) = (await response.json())["images"]
    assert base64.b64decode(image).startswith(b"\x89PNG")


async def test_text_that_is_not_valid_unicode_finds_nothing_instead_of_crashing(
    app_factory: AppFactory,
) -> None:
    # A lone surrogate is what undecodable command-line bytes become (`easel show $'\xff'`).
    app = await app_factory(worker=False)
    job = (await app.service.draw(Origin("cli", "local", "ann"), small())).job
    assert await app.store.get_job(job.id + "\ud800") is None
    with pytest.raises(Rejected, match="not valid text"):
        await app.service.history(OWNER, query="castle \ud800")
    with pytest.raises(EaselError, match="No job with id"):
        await app.service.cancel(Origin("cli", "local", "ann"), "\udcff" * 8)
    assert [j.id for j in await app.service.history(OWNER, query="castle")] == [job.id]
