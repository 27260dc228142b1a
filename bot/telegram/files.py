"""Files people send the bot: a /draw's starting image, a Vary (Region) mask, an owner's LoRA.

Sizes are checked before anything is downloaded (what Telegram announces, then what ``getFile``
says, then the bytes themselves); the Service then checks the picture like every upload
(formats, bombs, first frame). A file that is not a picture is refused with what works.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from telegram import Message

from bot.chat.texts import not_an_image
from bot.telegram.send import with_retry
from generation.errors import ImageRejected
from generation.uploads import DEFAULT_MAX_BYTES, check_upload_size, load_upload

# A mask is black and white (greys allowed): a picture with more than this share of coloured
# pixels is someone's photo, not a mask. A JPEG of a black-and-white mask (Telegram recompresses
# photos) keeps its colour difference near 0, far below ``_COLOURED``.
_COLOURED = 48  # max - min of a pixel's R, G, B
_COLOURED_SHARE = 0.05

# The largest photo or image file a /draw may start from, or a mask may be (the Bot API's own
# download limit, 20 MB, applies on top; a local Bot API server lifts that one).
MAX_UPLOAD_BYTES = DEFAULT_MAX_BYTES


def is_picture(message: Message) -> bool:
    """A photo, or a file whose MIME type says it is an image."""
    document = message.document
    return bool(message.photo) or (
        document is not None and (document.mime_type or "").startswith("image/")
    )


def attachment_kind(message: Message) -> str | None:
    """What a message's attachment is, in a word: its MIME type ("application/pdf") or its
    kind ("video", "voice", "document"); None when there is nothing to name."""
    document = message.document
    if document is not None and document.mime_type:
        return document.mime_type
    attachment = message.effective_attachment
    if attachment is None or isinstance(attachment, tuple):
        return None
    return type(attachment).__name__.lower()


def check_attachment(message: Message) -> None:
    """Refuse a /draw that came with a file that is not a picture (a PDF, a video, a voice
    note...): it must not be drawn without it as if nothing was sent."""
    if message.effective_attachment is None or is_picture(message):
        return
    raise ImageRejected(not_an_image(attachment_kind(message)))


async def image_of(message: Message) -> bytes | None:
    """The photo (or image file) of ``message``, size-checked before it is downloaded."""
    if message.photo:
        file_id, size = message.photo[-1].file_id, message.photo[-1].file_size
    elif message.document is not None and is_picture(message):
        file_id, size = message.document.file_id, message.document.file_size
    else:
        return None
    if size is not None:
        check_upload_size(size, MAX_UPLOAD_BYTES)
    file = await with_retry(lambda: message.get_bot().get_file(file_id), "getFile")
    if file.file_size is not None:
        check_upload_size(file.file_size, MAX_UPLOAD_BYTES)
    data = bytes(await file.download_as_bytearray())
    check_upload_size(len(data), MAX_UPLOAD_BYTES)
    return data


def check_black_and_white(data: bytes) -> None:
    """Refuse a colour picture sent as a mask (a photo replied to a result is most likely a
    photo). What cannot be decoded is left to the Service, which says why. Blocking: call it in
    a thread."""
    try:
        image = load_upload(data, max_bytes=MAX_UPLOAD_BYTES)
    except ImageRejected:
        return
    image.thumbnail((256, 256), Image.Resampling.NEAREST)
    rgb = np.asarray(image, dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    if (spread > _COLOURED).mean() > _COLOURED_SHARE:
        raise ImageRejected(
            "That picture is in colour, so it is not a mask. A mask is black and white, the "
            "picture's size or shape: white where it should be repainted, black where it stays."
        )


async def document_of(message: Message, max_bytes: int) -> bytes | None:
    """The file (a document, not a photo) of ``message``, size-checked before it is
    downloaded; None when it has none."""
    document = message.document
    if document is None:
        return None
    if document.file_size is not None:
        check_upload_size(document.file_size, max_bytes)
    file = await with_retry(lambda: message.get_bot().get_file(document.file_id), "getFile")
    data = bytes(await file.download_as_bytearray())
    check_upload_size(len(data), max_bytes)
    return data
