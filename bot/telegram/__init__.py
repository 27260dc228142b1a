"""The Telegram bot: python-telegram-bot (v22) in the engine's process and event loop.

* ``application``: build, start (polling or webhook) and stop the Application;
* ``handlers``: ``/draw`` and the members' commands, inline buttons, reactions;
* ``repaint``: Zoom Out, Pan and Vary (Region): their buttons, masks replied to results, /region;
* ``files``: pictures people send (a /draw's starting image, a mask), size-checked downloads;
* ``admin``: who is a chat admin, and the admins' commands (models, limits, blocklist);
* ``delivery``: status messages and results (:class:`TelegramFrontEnd`);
* ``send``: sending with flood control (``RetryAfter``), photos, albums and PNG documents;
* ``keyboards``: the inline keyboards and their callback data; ``texts``: captions and help;
* ``origin``: who asks, from which chat.

Everything reaches the engine through ``app.service``; the words come from :mod:`bot.chat`.
"""

from bot.telegram.application import (
    ALLOWED_UPDATES,
    TelegramApplication,
    build_application,
    start_application,
    start_telegram,
    stop_application,
)

__all__ = [
    "ALLOWED_UPDATES",
    "TelegramApplication",
    "build_application",
    "start_application",
    "start_telegram",
    "stop_application",
]
