"""What travels through Redis comes back as it went (pure: no Redis here)."""

from __future__ import annotations

import dataclasses

from cluster.protocol import (
    BatchOrder,
    Outcome,
    Started,
    Ticket,
    WorkerInfo,
    decode_result,
    parse_progress,
    progress_message,
    started_fields,
)
from generation.render import AddOnFile, ModelSource
from generation.rendering import EncodedPng, RenderMeta
from generation.spec import Mode, Refiner
from tests.records import job_record

DEMO = ModelSource("demo", "builtin:demo", "builtin", "r1")


def _bytes_keys(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    return {key.encode(): value for key, value in fields.items()}  # as Redis returns them


def test_a_batch_keeps_every_ticket_field_and_the_starting_image() -> None:
    job = job_record("abcd2345", prompt="a castle", seed=42, parent_id="zzzz2345", parent_index=1)
    upscaler = ModelSource("4x", "/models/4x.pth", "upscaler", None)
    ticket = Ticket(RenderMeta.of(job), DEMO, upscaler, init_png=b"\x89PNG...")
    order = BatchOrder("b1", (ticket, Ticket(RenderMeta.of(job_record("efgh2345")), DEMO)))
    back = BatchOrder.decode(_bytes_keys(order.encode()))
    assert back == order
    assert back.tickets[0].meta.spec.prompt == "a castle" and back.tickets[0].job_id == "abcd2345"


def test_an_inpaint_ticket_carries_its_mask_and_options() -> None:
    job = job_record(
        "abcd2345",
        mode=Mode.INPAINT,
        strength=0.6,
        init_image="a" * 64,
        mask_image="b" * 64,
        inpaint={"mask_blur": 8, "inpainting_fill": 0, "inpaint_full_res": True},
    )
    ticket = Ticket(RenderMeta.of(job), DEMO, None, init_png=b"init", mask_png=b"mask")
    [back] = BatchOrder.decode(_bytes_keys(BatchOrder("b1", (ticket,)).encode())).tickets
    assert back == ticket and back.mask_png == b"mask"
    spec = back.meta.spec
    assert spec.mode is Mode.INPAINT and spec.mask_image == "b" * 64
    assert (spec.mask_blur, spec.inpainting_fill, spec.inpaint_full_res) == (8, 0, True)


def test_a_refined_ticket_with_addons_carries_the_refiner_and_the_files_names() -> None:
    job = job_record("abcd2345", refiner={"model": "xl-refiner", "switch_at": 0.7})
    refiner = ModelSource("xl-refiner", "builtin:demo-sdxl-refiner", "builtin", "r1")
    lora = AddOnFile("pixel", "lora", "/loras/pixel.safetensors", "c" * 64)
    ticket = Ticket(RenderMeta.of(job), DEMO, refiner=refiner, addons=(lora,))
    [back] = BatchOrder.decode(_bytes_keys(BatchOrder("b1", (ticket,)).encode())).tickets
    assert back == ticket and back.refiner == refiner and back.addons == (lora,)
    assert back.meta.spec.refiner == Refiner("xl-refiner", 0.7)
    # a ticket from an engine before the refiner and add-ons: neither
    data = ticket.to_json()
    del data["refiner"], data["addons"]
    assert Ticket.from_json(data) == Ticket(RenderMeta.of(job), DEMO)


def test_an_outcome_carries_its_png_bytes_and_a_failure_its_reason() -> None:
    pngs = (EncodedPng(b"one", 64, 64, 7), EncodedPng(b"two", 64, 64, 8))
    done = Outcome("b1", "abcd2345", "gpu1", "succeeded", 1.5, pngs=pngs)
    assert decode_result(_bytes_keys(done.encode())) == done
    failed = Outcome("b1", "abcd2345", "gpu1", "failed", error="CUDA out of memory")
    assert decode_result(_bytes_keys(failed.encode())) == failed
    assert decode_result(_bytes_keys(started_fields("b1", "gpu1"))) == Started("b1", "gpu1")


def test_a_heartbeat_round_trips_and_a_newer_workers_fields_do_not_break_it() -> None:
    info = WorkerInfo(
        "gpu1", "cuda", 24.0, 20.5, ("demo",), ("demo",), "rendering", ("abcd2345",), 12.0
    )
    assert WorkerInfo.decode(info.encode()) == info
    newer = WorkerInfo.decode(info.encode()[:-1] + ', "temperature_c": 71}')
    assert dataclasses.replace(newer, extra={}) == info
    assert newer.extra == {"temperature_c": 71}


def test_progress_messages_round_trip_with_and_without_a_preview() -> None:
    message = progress_message("b1", ["abcd2345"], 3, 20, b"\xff\xd8jpeg")
    assert parse_progress(message) == ("b1", ["abcd2345"], 3, 20, b"\xff\xd8jpeg")
    assert parse_progress(progress_message("b1", ["x"], 20, 20, None))[4] is None
