"""The Discord bot: discord.py in the engine's process and event loop.

* ``client``: the bot (:func:`create_bot`), its error handling, and :class:`DiscordRunner`
  (``easel serve`` runs it as a task);
* ``commands``: the members' slash commands; ``admin``: the server admins' (models, limits,
  blocklist, NSFW policy);
* ``buttons``: the buttons under a result (dynamic items: they survive restarts);
* ``actions``: what buttons and reactions do, and the "queue it and say so" step;
* ``delivery``: status messages and results (:class:`DiscordFrontEnd`);
* ``render``: the result embed and files; ``origin``: who asks, from where.

Everything reaches the engine through ``app.service``; the words come from :mod:`bot.chat`.
"""

from bot.discord.client import DiscordRunner, EaselBot, create_bot, start_discord

__all__ = ["DiscordRunner", "EaselBot", "create_bot", "start_discord"]
