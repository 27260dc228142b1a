"""Per-server administration: who may, and what it changes."""

from __future__ import annotations

from tests.addon_files import make_sd1_lora
from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)


async def test_admin_commands_check_permissions_inside_the_command(world_factory) -> None:
    async with world_factory(worker=False) as world:
        bob = world.member("bob")
        # Discord hides the admin commands from ordinary members (a default, not a guarantee)...
        assert "blocklist add" not in bob.available_commands(world.channel)
        assert "draw" in bob.available_commands(world.channel)
        # ...and a server can override that default; Easel still checks inside the command.
        commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
        for name in ("blocklist", "limits", "models", "nsfw"):
            world.guild.set_command_permissions(commands[name], {bob: True})
        for command, options in (
            ("blocklist add", {"words": "cats"}),
            ("limits", {"max_steps": 2}),
            ("models default", {"name": "demo"}),
            ("nsfw", {"policy": "allow"}),
        ):
            result = await bob.slash(world.channel, command, **options)
            assert result.ephemeral and "Manage Server" in result.response.content, command
        settings = await world.app.service.scope_settings(_origin(world))
        assert settings.blocklist == () and settings.max_steps is None and settings.nsfw == ()


def _origin(world):
    from generation.requests import Origin

    return Origin("discord", str(world.guild.id), "0")


async def test_manage_server_members_and_owner_ids_are_admins(world_factory) -> None:
    async with world_factory(worker=False) as world:
        mod = world.member("mod", admin=True)
        olga = world.member("olga")  # no permissions, but listed as an owner in the config
        alice = world.member("alice")
        config = world.app.config
        world.app.config = config.model_copy(
            update={"discord": config.discord.model_copy(update={"owner_ids": (olga.id,)})}
        )
        # Discord only shows her the commands where the server allows it; Easel then agrees.
        commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
        for name in ("blocklist", "limits"):
            world.guild.set_command_permissions(commands[name], {olga: True})

        added = await mod.slash(world.channel, "blocklist add", words="dragon, wyvern")
        assert "2 word(s)" in added.response.content
        listed = await mod.slash(world.channel, "blocklist list")
        assert "`dragon`" in listed.response.content and "`wyvern`" in listed.response.content
        removed = await olga.slash(world.channel, "blocklist remove", words="wyvern")
        assert "1 word(s)" in removed.response.content

        limits = await olga.slash(world.channel, "limits", max_steps=2, daily_quota=5)
        text = limits.response.content
        assert "updated" in text and "`max_steps` = 2:" in text
        refused = await alice.slash(world.channel, "draw", prompt="a cat", steps=3)
        assert refused.ephemeral and "Steps 3" in refused.response.content
        # the limit is named, and who set it: this server's admins, not Easel's config
        assert "this server's admins allow at most 2 steps" in refused.response.content
        shown = await mod.slash(world.channel, "limits")
        assert "`daily_quota` = 5:" in shown.response.content
        reset = await mod.slash(world.channel, "limits", reset=True)
        assert "`max_steps` = 60 (the service's default)" in reset.response.content

        # Settings are per server: another guild is untouched.
        settings = await world.app.service.scope_settings(_origin(world))
        assert settings.blocklist == ("dragon",)


async def test_models_allow_deny_and_default_per_server(world_factory, tmp_path) -> None:
    async with world_factory(worker=False) as world:
        mod = world.member("mod", admin=True)
        alice = world.member("alice")
        await world.app.service.add_model(_admin(), "sketch", "builtin:demo")
        lora = make_sd1_lora(tmp_path / "ink.safetensors")
        await world.app.service.add_addon(_admin(), "ink", str(lora), "lora")

        listed = await mod.slash(world.channel, "models list")
        assert "`demo`" in listed.response.content and "`sketch`" in listed.response.content
        assert "`ink` (lora, sd1): write <lora:ink:1>" in listed.response.content
        assert "denied" not in listed.response.content
        names = await mod.autocomplete(world.channel, "models deny", "name", "sk")
        assert [c["value"] for c in names] == ["sketch"]

        denied = await mod.slash(world.channel, "models deny", name="sketch")
        assert "denied" in denied.response.content
        choices = await alice.autocomplete(world.channel, "draw", "model", "")
        assert [c["value"] for c in choices] == ["demo"]
        refused = await alice.slash(world.channel, "draw", prompt="x", model="sketch")
        assert refused.ephemeral and "not allowed here" in refused.response.content
        last = await mod.slash(world.channel, "models deny", name="demo")
        assert "no model at all" in last.response.content

        not_allowed = await mod.slash(world.channel, "models default", name="sketch")
        assert "allow it first" in not_allowed.response.content
        allowed = await mod.slash(world.channel, "models allow", name="sketch")
        assert "allowed" in allowed.response.content
        default = await mod.slash(world.channel, "models default", name="sketch")
        assert "default" in default.response.content
        result = await alice.slash(world.channel, "draw", prompt="a sketch")
        job = await world.job(world.job_of(result))
        assert job.model == "sketch"

        # A LoRA is allowed and denied per server the same way (allowed_loras)
        names = await mod.autocomplete(world.channel, "models deny", "name", "in")
        assert [c["value"] for c in names] == ["ink"]
        denied = await mod.slash(world.channel, "models deny", name="ink")
        assert denied.response.content == "⛔ LoRA `ink` is denied here."
        listed = await mod.slash(world.channel, "models list")
        assert "`ink` (lora, sd1): ⛔ not allowed here" in listed.response.content
        refused = await alice.slash(world.channel, "draw", prompt="a sketch <lora:ink:0.5>")
        assert refused.ephemeral and "ink" in refused.response.content
        assert "not allowed" in refused.response.content
        again = await mod.slash(world.channel, "models deny", name="ink")
        assert again.response.content == "LoRA `ink` is not allowed here anyway."
        allowed = await mod.slash(world.channel, "models allow", name="ink")
        assert allowed.response.content == "✅ LoRA `ink` is allowed here."
        settings = await world.app.service.scope_settings(mod_origin(world))
        assert settings.allowed_loras == ("ink",)


def mod_origin(world):
    from generation.requests import Origin

    return Origin("discord", str(world.guild.id), "mod", is_admin=True)


def _admin():
    from generation.requests import Origin

    return Origin("cli", "local", "root", is_admin=True)


async def test_nsfw_policy_per_channel(world_factory) -> None:
    async with world_factory() as world:
        mod = world.member("mod", admin=True)
        alice = world.member("alice")
        general = world.guild.create_text_channel("general")

        shown = await mod.slash(world.channel, "nsfw")
        assert "refuse" in shown.response.content  # the configured default
        spoiler = await mod.slash(world.channel, "nsfw", policy="spoiler")
        assert "is now **spoiler**" in spoiler.response.content

        refused = await alice.slash(general, "draw", prompt="a nude statue")
        assert refused.ephemeral and "NSFW" in refused.response.content
        # Only the prompt is checked: "--no nsfw" is a common negative prompt.
        fine = await alice.slash(general, "draw", prompt="a statue --no nsfw", steps=1)
        world.accepted(fine)

        result = await alice.slash(world.channel, "draw", prompt="a nude statue", steps=1)
        job = await world.delivered(world.job_of(result))
        message = world.result_message(job.id)
        assert [a.filename for a in message.attachments] == [f"SPOILER_easel_{job.id}.png"]
        assert message.embeds[0].image.url is None  # an embed cannot blur its image
        await world.delivered(world.job_of(fine))


async def test_styles_added_by_admins_listed_for_everyone_and_used_with_style(
    world_factory,
) -> None:
    async with world_factory() as world:
        mod = world.member("mod", admin=True)
        alice = world.member("alice")
        added = await mod.slash(
            world.channel,
            "styles add",
            name="ink",
            prompt="{prompt}, ink drawing",
            negative="colour",
        )
        assert "saved" in added.response.content
        refused = await alice.slash(world.channel, "styles add", name="x", prompt="y")
        assert refused.ephemeral and "Manage Server" in refused.response.content
        bad = await mod.slash(world.channel, "styles add", name="empty", prompt=" ")
        assert "needs a prompt" in bad.response.content
        listed = await alice.slash(world.channel, "styles list")
        assert "`ink`: {prompt}, ink drawing (no: colour)" in listed.response.content
        result = await alice.slash(world.channel, "draw", prompt="a fox --style ink --steps 2")
        job = await world.job(world.job_of(result))
        assert (job.prompt, job.negative_prompt) == ("a fox, ink drawing", "colour")
        choices = await alice.autocomplete(world.channel, "draw", "style", "in")
        assert [c["value"] for c in choices] == ["ink"]
        chosen = await alice.slash(world.channel, "draw", prompt="a hare --steps 2", style="ink")
        job = await world.job(world.job_of(chosen))
        assert job.prompt == "a hare, ink drawing"
        unknown = await alice.slash(world.channel, "draw", prompt="a fox --style noir")
        assert unknown.ephemeral and "Unknown style 'noir'" in unknown.response.content
        removed = await mod.slash(world.channel, "styles remove", name="ink")
        assert "removed" in removed.response.content
        assert (
            "No prompt styles" in (await alice.slash(world.channel, "styles list")).response.content
        )


async def test_an_owner_adds_a_lora_file_and_a_server_admin_may_not(
    world_factory, tmp_path
) -> None:
    from tests.addon_files import make_lora

    async with world_factory() as world:
        mod = world.member("mod", admin=True)  # Manage Server: this server's admin only
        olga = world.member("olga")  # one of Easel's owners
        config = world.app.config
        world.app.config = config.model_copy(
            update={"discord": config.discord.model_copy(update={"owner_ids": (olga.id,)})}
        )
        commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
        world.guild.set_command_permissions(commands["models"], {olga: True})
        data = make_lora(tmp_path / "ink.safetensors", 1).read_bytes()

        refused = await mod.slash(
            world.channel, "models add", name="ink", file=("ink.safetensors", data)
        )
        assert "Only Easel's owners can add LoRA or embeddings" in refused.response.content
        junk = await olga.slash(
            world.channel, "models add", name="junk", file=("junk.safetensors", b"not weights")
        )
        assert "is not a readable .safetensors file" in junk.response.content
        assert await world.app.service.list_addons() == []

        added = await olga.slash(
            world.channel, "models add", name="ink", file=("ink.safetensors", data)
        )
        assert added.response.content == (
            "✅ LoRA `ink` registered: write <lora:ink:0.8> in a prompt."
        )
        result = await mod.slash(world.channel, "draw", prompt="a cat <lora:ink:0.6>", seed=2)
        job = await world.delivered(world.accepted(result))
        assert job.status == "succeeded" and [a.name for a in job.spec.loras] == ["ink"]
