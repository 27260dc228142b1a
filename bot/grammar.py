"""The one ``/draw`` command grammar shared by Discord, Telegram and the web prompt box (pure).

::

    [/draw | /draw@Bot | /imagine] <prompt> [--option value]...
    <prompt> | <negative prompt>          (shorthand, only when no --no is given)

Options (aliases in brackets): ``--no`` (repeatable, joined with ", "), ``--seed``, ``--steps``,
``--cfg`` [``--guidance``], ``--ar`` [``--aspect``], ``--size``, ``--sampler``, ``--model``,
``--n`` [``--count``, ``--batch``], ``--strength``, ``--hires`` (A1111's hires fix: the scale,
more than 1 and at most 4, ``2`` or ``2x``; ``--hires`` alone is 2), ``--style``
[``--styles``] (prompt styles by name, comma-separated), ``--refiner`` (an SDXL refiner's
name) and ``--switch-at`` [``--refiner-switch-at``] (when it takes over: more than 0, less than
1). Option names are
case-insensitive and may be written ``--seed=5``.

Rules, chosen to be tolerant of phones and chat clients:

* An option starts at the beginning of the text or after whitespace, and its value runs until
  the next option. ``—`` and ``–`` (what phones make of ``--``) also start options, but only for
  known option names: ``a knight —armored`` stays prompt text, while ``--armored`` is an error.
* A value (or the whole prompt) wrapped in double quotes (``"..."`` or ``“...”``) is taken
  literally: options inside are not options, ``\\"`` and ``\\\\`` are escapes, and surrounding
  spaces are kept. Quotes that do not wrap the whole value stay as typed
  (``a sign saying "open"``) but still hide options inside them; an unbalanced quote is a
  literal character.
* ``|`` splits prompt and negative prompt only outside quotes and outside ``[]``, ``()`` and
  ``{}``, so A1111 alternation ``[cat|dog]`` and dynamic prompts ``{a|b}`` survive.
* ``--seed -1`` means "random" (A1111's convention) and leaves the seed unset.
* Only type-level ranges are checked here (steps >= 1, 0 < strength <= 1...); server maximums are
  the service's job. ``--size`` and ``--ar`` exclude each other.

:func:`format_draw` writes a request back in this grammar, quoting where needed, so that
``parse_draw(format_draw(r)) == r`` for every request the grammar can express.
"""

from __future__ import annotations

import difflib
import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import TypeVar

from generation.errors import InvalidRequest, shown
from generation.hires import MAX_SCALE, MIN_SCALE
from generation.requests import DrawRequest, HiresRequest
from generation.samplers import resolve_sampler
from generation.sizing import format_aspect, parse_aspect, parse_size
from generation.spec import MAX_SEED

T = TypeVar("T")

HIRES_DEFAULT = 2.0  # "--hires" alone
EMPTY_PROMPT_MESSAGE = "Write what to draw after /draw, e.g. /draw a castle at dusk --no blurry"


class GrammarError(InvalidRequest):
    """The ``/draw`` text cannot be understood; ``option`` names the culprit when there is one."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class _Option:
    name: str
    aliases: tuple[str, ...]
    allowed: str  # what values are allowed, for messages
    example: str


_OPTIONS: tuple[_Option, ...] = (
    _Option("no", (), "the things to keep out of the picture", "--no blurry, text"),
    _Option("seed", (), f"a whole number from 0 to {MAX_SEED}, or -1 for random", "--seed 42"),
    _Option("steps", (), "a whole number of at least 1", "--steps 30"),
    _Option("cfg", ("guidance",), "a number of at least 0", "--cfg 7"),
    _Option("ar", ("aspect",), "a ratio of two whole numbers between 1:4 and 4:1", "--ar 3:2"),
    _Option("size", (), "WIDTHxHEIGHT in pixels", "--size 512x768"),
    _Option(
        "sampler", (), "a sampler name such as DPM++ 2M Karras or Euler a", "--sampler Euler a"
    ),
    _Option("model", (), "the name of an installed model", "--model sd15"),
    _Option("n", ("count", "batch"), "a whole number of at least 1", "--n 4"),
    _Option("strength", (), "a number greater than 0 and at most 1", "--strength 0.6"),
    _Option(
        "hires",
        (),
        f"a scale more than {MIN_SCALE:g} and at most {MAX_SCALE:g} (alone: {HIRES_DEFAULT:g})",
        "--hires 2",
    ),
    _Option(
        "style",
        ("styles",),
        "the name of a prompt style (several: comma-separated)",
        "--style cinematic",
    ),
    _Option("refiner", (), "the name of an installed SDXL refiner", "--refiner xl-refiner"),
    _Option(
        "switch-at",
        ("refiner-switch-at",),
        "a number more than 0 and less than 1 (the share of the steps before the refiner)",
        "--switch-at 0.8",
    ),
)
_BY_NAME: dict[str, _Option] = {
    alias: option for option in _OPTIONS for alias in (option.name, *option.aliases)
}

_PREFIX_RE = re.compile(r"^\s*/(?:draw|imagine)(?:@\w+)?(?=\s|\Z)", re.IGNORECASE)
_MARKER_RE = re.compile(r"(?<!\S)(--|[—–]-?)([A-Za-z][\w-]*)(?=\s|=|\Z)")
_INT_RE = re.compile(r"^[+-]?\d{1,30}$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$")

_OPEN_QUOTES = '"“'
_CLOSE_QUOTES = '"”'
_QUOTE_CHARS = '"“”'
_ESCAPABLE = '\\"“”'


def _known_options() -> str:
    parts = []
    for option in _OPTIONS:
        aliases = ", ".join(f"--{alias}" for alias in option.aliases)
        parts.append(f"--{option.name}" + (f" ({aliases})" if aliases else ""))
    return ", ".join(parts)


# --- quoting -------------------------------------------------------------------------------


def _find_close(text: str, start: int) -> int | None:
    """Index of the first unescaped closing quote at or after ``start``."""
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char in _CLOSE_QUOTES:
            return index
        index += 1
    return None


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each balanced quoted region; unbalanced quotes are literal."""
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(text):
        if text[index] in _OPEN_QUOTES:
            close = _find_close(text, index + 1)
            if close is None:
                break  # no closing quote anywhere after: the rest is literal
            spans.append((index, close + 1))
            index = close + 1
        else:
            index += 1
    return spans


def _in_spans(position: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    at = bisect_right(starts, position) - 1
    return at >= 0 and spans[at][0] <= position < spans[at][1]


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in _ESCAPABLE:
            out.append(text[index + 1])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _wrapped(text: str) -> bool:
    """Whether ``text`` (already stripped) is one quoted string from end to end."""
    return len(text) >= 2 and text[0] in _OPEN_QUOTES and _find_close(text, 1) == len(text) - 1


def _clean(raw: str) -> str:
    """Strip a value; unwrap and unescape it when quotes surround all of it."""
    text = raw.strip()
    if _wrapped(text):
        return _unescape(text[1:-1])
    return text


def _quote(text: str) -> str:
    return '"' + "".join("\\" + c if c in _ESCAPABLE else c for c in text) + '"'


# --- parsing -------------------------------------------------------------------------------


def _split_shorthand(segment: str) -> tuple[str, str] | None:
    """Split ``prompt | negative`` at the first ``|`` outside quotes and brackets."""
    spans = _quoted_spans(segment)
    starts = [start for start, _ in spans]
    depth = 0
    for index, char in enumerate(segment):
        if _in_spans(index, spans, starts):
            continue
        if char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(0, depth - 1)
        elif char == "|" and depth == 0:
            return segment[:index], segment[index + 1 :]
    return None


def _flag(typed: str) -> str:
    return f"--{typed}"


def _parse_int(flag: str, option: _Option, value: str) -> int:
    if not _INT_RE.match(value):
        raise GrammarError(
            f"{flag} must be {option.allowed} (e.g. {option.example}); got {shown(value)}.", flag
        )
    return int(value)


def _parse_float(flag: str, option: _Option, value: str) -> float:
    if not _FLOAT_RE.match(value):
        raise GrammarError(
            f"{flag} must be {option.allowed} (e.g. {option.example}); got {shown(value)}.", flag
        )
    number = float(value.replace(",", "."))
    if not math.isfinite(number):
        raise _out_of_range(flag, option, value)
    return number


def _out_of_range(flag: str, option: _Option, value: str) -> GrammarError:
    return GrammarError(
        f"{flag} is out of range: it must be {option.allowed} (e.g. {option.example}); "
        f"got {shown(value, quote=False)}.",
        flag,
    )


def _wrap(flag: str, error: InvalidRequest) -> GrammarError:
    return GrammarError(f"{flag}: {error.message}", flag)


def parse_draw(text: str) -> DrawRequest:
    """Parse ``/draw`` text into a :class:`DrawRequest`, or raise :class:`GrammarError`."""
    prefix = _PREFIX_RE.match(text)
    body = text[prefix.end() :] if prefix else text

    spans = _quoted_spans(body)
    starts = [start for start, _ in spans]
    markers: list[tuple[str, str, int, int]] = []  # (typed name, dash, start, value start)
    for match in _MARKER_RE.finditer(body):
        if _in_spans(match.start(), spans, starts):
            continue
        dash, typed = match.group(1), match.group(2)
        if typed.lower() not in _BY_NAME:
            if dash != "--":
                continue  # "—word" in prose, not an option
            suggestion = difflib.get_close_matches(typed.lower(), list(_BY_NAME), n=1)
            hint = f" Did you mean --{suggestion[0]}?" if suggestion else ""
            raise GrammarError(
                f"Unknown option --{shown(typed, quote=False)}.{hint} "
                f"Known options: {_known_options()}.",
                f"--{typed}",
            )
        value_start = match.end()
        if body.startswith("=", value_start):
            value_start += 1
        markers.append((typed, dash, match.start(), value_start))

    prompt_segment = body[: markers[0][2]] if markers else body
    values: dict[str, tuple[str, str]] = {}  # option name -> (flag as typed, value)
    negatives: list[str] = []
    for index, (typed, _dash, _start, value_start) in enumerate(markers):
        end = markers[index + 1][2] if index + 1 < len(markers) else len(body)
        option = _BY_NAME[typed.lower()]
        flag = _flag(typed.lower())
        value = _clean(body[value_start:end])
        if option.name == "hires" and not value.strip():
            value = f"{HIRES_DEFAULT:g}"  # "--hires" alone: A1111's usual 2x
        if not value.strip():
            raise GrammarError(
                f"{flag} needs a value: {option.allowed} (e.g. {option.example}).", flag
            )
        if option.name == "no":
            negatives.append(value)
            continue
        if option.name in values:
            first_flag = values[option.name][0]
            if first_flag == flag:
                message = f"{flag} was given twice; give it once."
            else:
                message = f"{flag} and {first_flag} are the same option; give it once."
            raise GrammarError(message, flag)
        values[option.name] = (flag, value)

    negative = ", ".join(negatives)
    prompt_text = prompt_segment.strip()
    split = None if negatives or _wrapped(prompt_text) else _split_shorthand(prompt_segment)
    if split is not None:
        prompt, negative = _clean(split[0]), _clean(split[1])
    else:
        prompt = _clean(prompt_segment)
    if not prompt.strip():
        raise GrammarError(EMPTY_PROMPT_MESSAGE)

    return _build(prompt, negative, values)


def _build(prompt: str, negative: str, values: dict[str, tuple[str, str]]) -> DrawRequest:
    seed: int | None = None
    steps: int | None = None
    count: int | None = None
    width: int | None = None
    height: int | None = None
    cfg: float | None = None
    strength: float | None = None
    aspect: str | None = None
    sampler: str | None = None
    model: str | None = None
    hires: HiresRequest | None = None
    styles: tuple[str, ...] = ()
    refiner: str | None = None
    switch_at: float | None = None
    for name, (flag, value) in values.items():
        option = _BY_NAME[name]
        if name == "seed":
            number = _parse_int(flag, option, value)
            if number != -1 and not 0 <= number <= MAX_SEED:
                raise _out_of_range(flag, option, value)
            seed = None if number == -1 else number
        elif name in ("steps", "n"):
            number = _parse_int(flag, option, value)
            if number < 1:
                raise _out_of_range(flag, option, value)
            if name == "steps":
                steps = number
            else:
                count = number
        elif name == "cfg":
            cfg = _parse_float(flag, option, value)
            if cfg < 0:
                raise _out_of_range(flag, option, value)
        elif name == "strength":
            strength = _parse_float(flag, option, value)
            if not 0 < strength <= 1:
                raise _out_of_range(flag, option, value)
        elif name == "hires":
            # "2x" is how people say a scale (Midjourney's "Upscale (2x)", A1111's "Upscale by")
            scale = _parse_float(flag, option, re.sub(r"(?<=\d)\s*[x×]$", "", value, flags=re.I))
            if not MIN_SCALE < scale <= MAX_SCALE:
                raise _out_of_range(flag, option, value)
            hires = HiresRequest(scale=scale)
        elif name == "ar":
            try:
                aspect = format_aspect(*parse_aspect(value))
            except InvalidRequest as error:
                raise _wrap(flag, error) from None
        elif name == "size":
            try:
                width, height = parse_size(value)
            except InvalidRequest as error:
                raise _wrap(flag, error) from None
        elif name == "sampler":
            try:
                sampler = resolve_sampler(value)
            except InvalidRequest as error:
                raise _wrap(flag, error) from None
        elif name == "model":
            model = value
        elif name == "refiner":
            refiner = value
        elif name == "switch-at":
            switch_at = _parse_float(flag, option, value)
            if not 0 < switch_at < 1:
                raise _out_of_range(flag, option, value)
        elif name == "style":
            styles = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
            if not styles:
                raise GrammarError(f"{flag} needs a style's name (e.g. {option.example}).", flag)
    if "size" in values and "ar" in values:
        raise GrammarError(
            f"Use either {values['size'][0]} or {values['ar'][0]}, not both: --size sets the "
            "exact size in pixels, --ar keeps the server's usual size and changes its shape.",
            values["ar"][0],
        )
    return DrawRequest(
        prompt=prompt,
        negative_prompt=negative,
        seed=seed,
        steps=steps,
        cfg=cfg,
        width=width,
        height=height,
        aspect=aspect,
        sampler=sampler,
        model=model,
        count=count,
        strength=strength,
        hires=hires,
        styles=styles,
        refiner=refiner,
        refiner_switch_at=switch_at,
    )


# --- options given twice -------------------------------------------------------------------


def merge_fields(inline: DrawRequest, fields: DrawRequest) -> DrawRequest:
    """The one rule for an option given both in the prompt (``--seed 5``) and as a field (a
    Discord slash-command option, a field of the web page or ``/api``, an ``easel draw`` flag):

    * the option typed in the prompt wins: the prompt is what people copy and paste to redo a
      picture, so it must mean the same wherever it is pasted;
    * negative prompts from both are kept, joined with a comma;
    * a size or an aspect ratio typed in the prompt replaces the fields' size *and* aspect.

    ``inline`` is :func:`parse_draw` of the prompt; ``fields.prompt`` is not used.
    """
    negative = ", ".join(
        part for part in (inline.negative_prompt, fields.negative_prompt) if part.strip()
    )
    width, height, aspect = fields.width, fields.height, fields.aspect
    if inline.width is not None or inline.height is not None or inline.aspect is not None:
        width, height, aspect = inline.width, inline.height, inline.aspect
    elif width is not None or height is not None:
        aspect = None  # an exact size makes the aspect ratio moot

    def pick(typed: T | None, field: T | None) -> T | None:
        return field if typed is None else typed

    return DrawRequest(
        prompt=inline.prompt,
        negative_prompt=negative,
        seed=pick(inline.seed, fields.seed),
        steps=pick(inline.steps, fields.steps),
        cfg=pick(inline.cfg, fields.cfg),
        width=width,
        height=height,
        aspect=aspect,
        sampler=pick(inline.sampler, fields.sampler),
        model=pick(inline.model, fields.model),
        count=pick(inline.count, fields.count),
        strength=pick(inline.strength, fields.strength),
        init_image=fields.init_image if fields.init_image is not None else inline.init_image,
        mask=fields.mask,  # never typed: the page's or an API's mask of the uploaded image
        styles=inline.styles or fields.styles,
        hires=pick(inline.hires, fields.hires),
        refiner=pick(inline.refiner, fields.refiner),
        refiner_switch_at=pick(inline.refiner_switch_at, fields.refiner_switch_at),
    )


# --- formatting ----------------------------------------------------------------------------


def _format_value(value: str, *, is_prompt: bool = False) -> str:
    needs_quotes = (
        not value
        or value != value.strip()
        or any(char in _QUOTE_CHARS for char in value)
        or _MARKER_RE.search(value) is not None
        or (is_prompt and ("|" in value or _PREFIX_RE.match(value) is not None))
    )
    return _quote(value) if needs_quotes else value


def format_draw(request: DrawRequest, *, command: str = "/draw") -> str:
    """Write ``request`` in the ``/draw`` grammar (``command=""`` leaves the command out).

    ``init_image`` cannot be written as text and is left out; of a hires fix only its scale
    can be (``--hires 2``: the other fields are A1111 API options). Raises ``ValueError`` when only
    one of width and height is set, which the grammar cannot express.
    """
    if (request.width is None) != (request.height is None):
        raise ValueError("width and height must be set together to be written as --size")
    parts = [command] if command else []
    parts.append(_format_value(request.prompt, is_prompt=True))
    if request.negative_prompt:
        parts.append("--no " + _format_value(request.negative_prompt))
    if request.seed is not None:
        parts.append(f"--seed {request.seed}")
    if request.steps is not None:
        parts.append(f"--steps {request.steps}")
    if request.cfg is not None:
        parts.append(f"--cfg {request.cfg!r}")
    if request.sampler is not None:
        parts.append("--sampler " + _format_value(request.sampler))
    if request.width is not None and request.height is not None:
        parts.append(f"--size {request.width}x{request.height}")
    if request.aspect is not None:
        parts.append("--ar " + _format_value(request.aspect))
    if request.model is not None:
        parts.append("--model " + _format_value(request.model))
    if request.count is not None:
        parts.append(f"--n {request.count}")
    if request.strength is not None:
        parts.append(f"--strength {request.strength!r}")
    if request.hires is not None:
        parts.append(f"--hires {request.hires.scale!r}")
    if request.styles:
        parts.append("--style " + _format_value(", ".join(request.styles)))
    if request.refiner is not None:
        parts.append("--refiner " + _format_value(request.refiner))
    if request.refiner_switch_at is not None:
        parts.append(f"--switch-at {request.refiner_switch_at!r}")
    return " ".join(parts)
