"""An owner registers a LoRA or embedding from Telegram by replying ``/models add NAME`` to the
.safetensors file: it is checked like any, kept in the data folder and usable at once; anyone
else, a pickle, a wrong kind or a missing file gets the reason and nothing is registered. A
chat's admins allow and deny models and LoRA there with ``/models allow|deny NAME``."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from generation.requests import Origin
from tests.addon_files import make_embedding, make_lora, make_sd1_lora
from tests.telegram.helpers import OWNER, Env, draw, ids, private, reply_text

pytestmark = pytest.mark.asyncio(loop_scope="module")


def file_message(env: Env, chat: dict[str, Any], user: dict[str, Any], data: bytes) -> Any:
    document = {**env.fake.add_file(data), "file_name": "x.safetensors", "mime_type": ""}
    return env.fake.message(chat, user, document=document)


async def test_an_owner_adds_a_lora_and_an_embedding_by_reply(env: Env, tmp_path: Any) -> None:
    chat, _ = private(env.fake)
    owner = env.fake.user(OWNER)
    lora = file_message(env, chat, owner, make_lora(tmp_path / "a.safetensors", 1).read_bytes())
    command = env.fake.send_text(chat, owner, "/models add inky", reply_to=lora)
    answer = await reply_text(env.fake, command)
    assert answer == "✅ LoRA inky registered: write <lora:inky:0.8> in a prompt."
    kept = await env.app.store.get_addon("inky")
    assert kept is not None and kept.path.startswith(str(env.app.config.data_dir / "addons"))

    neg = file_message(env, chat, owner, make_embedding(tmp_path / "n.safetensors", 2).read_bytes())
    command = env.fake.send_text(chat, owner, "/models add smudge embedding", reply_to=neg)
    assert "✅ Embedding smudge registered" in await reply_text(env.fake, command)

    _, job, _ = await draw(env, "/draw a cat <lora:inky:0.7> --no smudge --seed 3")
    assert job.status == "succeeded"
    assert [a.name for a in job.spec.loras] == ["inky"]
    assert [a.name for a in job.spec.embeddings] == ["smudge"]


async def test_refusals_register_nothing(env: Env, tmp_path: Any) -> None:
    chat, user = private(env.fake)
    owner = env.fake.user(OWNER)
    before = {a.name for a in await env.app.service.list_addons()}
    good = make_lora(tmp_path / "b.safetensors", 3).read_bytes()
    cases = [
        (user, "/models add mine", good, "Only this chat's admins can use /models"),
        (
            owner,
            "/models add pickled",
            pickle.dumps({"a": 1}),
            "is not a readable .safetensors file",
        ),
        (owner, "/models add odd texture", good, "Reply to a .safetensors file"),
        (owner, "/models add", good, "Reply to a .safetensors file"),
        (owner, "/models add bad!name", good, "letters, digits"),
    ]
    for sender, text, data, reason in cases:
        command = env.fake.send_text(
            chat, sender, text, reply_to=file_message(env, chat, owner, data)
        )
        assert reason in await reply_text(env.fake, command), text
    alone = env.fake.send_text(chat, owner, "/models add lonely")
    assert "Reply to a .safetensors file" in await reply_text(env.fake, alone)
    addons = await env.app.service.list_addons()
    assert {a.name for a in addons} == before
    folder = env.app.config.data_dir / "addons"  # no file kept for what was refused
    kept = {p.name for p in folder.iterdir()} if folder.exists() else set()
    assert kept <= {Path(a.path).name for a in addons}


async def test_a_chats_admins_allow_and_deny_models_and_lora(env: Env, tmp_path: Any) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    member, admin = fake.user(next(ids)), fake.user(next(ids))
    fake.set_member(group["id"], admin["id"], "administrator")
    root = Origin("cli", "x", "x", is_admin=True)
    await env.app.service.add_model(root, "sketch", "builtin:demo")
    await env.app.service.add_addon(
        root, "ink", str(make_sd1_lora(tmp_path / "ink.safetensors")), "lora"
    )

    async def ask(user: dict[str, Any], text: str) -> str:
        return await reply_text(fake, fake.send_text(group, user, text))

    assert "Only this chat's admins" in await ask(member, "/models deny sketch")
    assert await ask(admin, "/models deny sketch") == "⛔ sketch is denied here."
    refused = await ask(member, "/draw a boat --model sketch")
    assert "Model 'sketch' is not allowed here" in refused
    assert await ask(admin, "/models deny ink") == "⛔ LoRA ink is denied here."
    listed = await ask(admin, "/models")
    assert "• ink (lora, sd1): ⛔ not allowed here" in listed
    assert "sketch (not allowed here)" in listed
    refused = await ask(member, "/draw a boat <lora:ink:0.5>")
    assert "LoRA 'ink' is not allowed here." in refused
    assert await ask(admin, "/models allow ink") == "✅ LoRA ink is allowed here."
    assert await ask(admin, "/models allow") == "🚫 Name the model or LoRA: /models allow NAME"
    remaining = [m.name for m in await env.app.service.list_models() if m.name != "sketch"]
    for name in remaining:  # deny every other model: the last one is refused
        answer = await ask(admin, f"/models deny {name}")
    assert answer == "🚫 That would leave no model at all; allow another one first."
    assert "Unknown model 'nope'" in await ask(admin, "/models allow nope")
