"""Admission policy: turns a request into a validated :class:`GenerationSpec`, or refuses it.

Pure: the config and per-scope settings come in as values, time as an argument.
``generation.on_excess`` decides whether out-of-range numbers are refused or clamped; malformed
input (an empty prompt, an unknown sampler) is always refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from generation.config import GenerationConfig, LimitsConfig
from generation.errors import (
    BlockedPrompt,
    InvalidRequest,
    QuotaExceeded,
    RateLimited,
    TooManyQueued,
)
from generation.hires import resolve as resolve_hires
from generation.limits import RateLimiter, format_retry, seconds_until_utc_midnight, utc_day_start
from generation.model_sources import model_family
from generation.prompt_syntax import syntax_for_family
from generation.requests import DrawRequest
from generation.samplers import resolve_sampler
from generation.sizing import parse_aspect, round_to_multiple, size_for_aspect
from generation.spec import MAX_SEED, GenerationSpec, Mode, Refiner
from generation.styles import MAX_STYLES, Style, check_style, style_map
from storage.records import ModelRecord

MIN_SIDE = 64
DEFAULT_IMG2IMG_STRENGTH = 0.6

# NSFW policy of a channel: refuse flagged prompts, send the images as spoilers, or allow them.
NSFW_MODES = ("refuse", "spoiler", "allow")
# Words that flag a prompt as NSFW (whole words, any case; only the prompt is checked, never the
# negative prompt, where "nsfw" is a common entry). A coarse first line, not a classifier.
# fmt: off
DEFAULT_NSFW_WORDS: tuple[str, ...] = (
    "nsfw", "nude", "nudes", "nudity", "naked", "topless", "bottomless", "porn", "porno",
    "pornographic", "sex", "sexual", "sexy", "explicit", "erotic", "erotica", "hentai",
    "lewd", "fetish", "genitals", "nipples", "lingerie", "gore", "gory", "xxx",
)
# fmt: on


def flagged_word(prompt: str, words: tuple[str, ...] = DEFAULT_NSFW_WORDS) -> str | None:
    """The first of ``words`` (NSFW ones by default) in ``prompt``: whole words, any case."""
    lowered = prompt.lower()
    for word in words:
        if re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", lowered):
            return word
    return None


def check_nsfw(prompt: str, mode: str) -> None:
    """Refuse a flagged prompt in a channel whose NSFW policy is ``refuse``."""
    if mode != "refuse":
        return
    word = flagged_word(prompt)
    if word is not None:
        raise BlockedPrompt(
            f"This channel does not allow NSFW prompts (\u201c{word}\u201d). Ask an admin, or "
            "use a channel where NSFW images are allowed.",
            word,
        )


def check_text(request: DrawRequest) -> None:
    """Refuse text that is not valid Unicode (a lone UTF-16 surrogate, as JSON ``"\\ud800"`` or
    undecodable command-line bytes give): it cannot be stored, written into a PNG or shown."""
    texts = {
        "prompt": request.prompt,
        "negative prompt": request.negative_prompt,
        "model": request.model,
        "sampler": request.sampler,
        "aspect ratio": request.aspect,
    }
    for label, text in texts.items():
        if text is not None:
            check_valid_text(label, text)


def check_valid_text(label: str, text: str) -> None:
    """One piece of text for :func:`check_text` (also used for history searches)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest(
            f"The {label} contains a character that is not valid text "
            f"(U+{ord(text[error.start]):04X}, an unpaired surrogate) at position "
            f"{error.start + 1}; remove it."
        ) from None


# What a platform calls the scope whose admins set limits there.
SCOPE_WORDS = {"discord": "server", "telegram": "chat"}


def who_allows(platform: str, *, by_scope: bool) -> str:
    """Who set a limit, as the subject of "… allow(s) at most N": "this server's admins allow"
    (a Discord server's own setting), "this chat's admins allow" (a Telegram chat's), "this
    service allows" (the config, and any limit on the web page or API, whose admin is the
    service's owner)."""
    word = SCOPE_WORDS.get(platform)
    if by_scope and word is not None:
        return f"this {word}'s admins allow"
    return "this service allows"


def _by_scope(own: int | None, base: int) -> bool:
    """Whether a scope's own setting, not the config, is the limit in force."""
    return own is not None and own < base


@dataclass(frozen=True)
class EffectiveLimits:
    """The per-user limits in force in a scope; ``by_scope``: the names of those the scope's
    own admins set (the others come from the config), so a refusal can say who set it."""

    rate_per_minute: float
    burst: int
    max_queued_per_user: int
    daily_quota: int
    max_queue: int
    by_scope: frozenset[str] = frozenset()

    def who_allows(self, name: str, platform: str) -> str:
        """ "this chat's admins allow" / "this service allows" for the limit ``name``."""
        return who_allows(platform, by_scope=name in self.by_scope)


@dataclass(frozen=True)
class ScopeSettings:
    """Per-scope admin settings stored as JSON on the scope row. ``None`` = server default."""

    default_model: str | None = None
    allowed_models: tuple[str, ...] | None = None
    # The LoRA this scope may name in <lora:...> (None: every registered one; generation.addons)
    allowed_loras: tuple[str, ...] | None = None
    blocklist: tuple[str, ...] = ()
    rate_per_minute: float | None = None
    burst: int | None = None
    max_queued_per_user: int | None = None
    daily_quota: int | None = None
    max_steps: int | None = None
    max_count: int | None = None
    max_pixels: int | None = None
    # Per-channel NSFW policy: (channel id, "refuse" | "spoiler" | "allow") pairs; see nsfw_mode.
    nsfw: tuple[tuple[str, str], ...] = ()
    # This scope's prompt styles (generation.styles), by name.
    styles: tuple[Style, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScopeSettings:
        data = data or {}
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("allowed_models", "allowed_loras", "blocklist"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if "nsfw" in values:
            pairs = values["nsfw"] or {}
            items = pairs.items() if isinstance(pairs, Mapping) else pairs
            values["nsfw"] = tuple(sorted((str(c), str(m)) for c, m in items))
        if "styles" in values:
            values["styles"] = _styles(values["styles"])
        return cls(**values)

    def nsfw_mode(self, channel_id: str, default: str = "refuse") -> str:
        """The NSFW policy of one channel (``default`` where the admin set none)."""
        return dict(self.nsfw).get(str(channel_id), default)

    def updated(self, changes: Mapping[str, Any]) -> ScopeSettings:
        """A copy with ``changes`` applied; each value is checked, ``None`` restores the default."""
        known = {f.name for f in fields(self)}
        values = asdict(self)
        for key, value in changes.items():
            if key not in known:
                raise InvalidRequest(
                    f"Unknown setting {key!r}. Settings: {', '.join(sorted(known))}."
                )
            values[key] = _check_setting(key, value)
        return ScopeSettings.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("allowed_models", "allowed_loras", "blocklist"):
            if data[key] is not None:
                data[key] = list(data[key])
        data["nsfw"] = dict(self.nsfw)
        data["styles"] = style_map(self.styles)
        return data

    def limits(self, base: LimitsConfig) -> EffectiveLimits:
        def pick(override: Any, default: Any) -> Any:
            return default if override is None else override

        own = {
            "rate_per_minute": self.rate_per_minute,
            "burst": self.burst,
            "max_queued_per_user": self.max_queued_per_user,
            "daily_quota": self.daily_quota,
        }
        return EffectiveLimits(
            rate_per_minute=pick(self.rate_per_minute, base.rate_per_minute),
            burst=pick(self.burst, base.burst),
            max_queued_per_user=pick(self.max_queued_per_user, base.max_queued_per_user),
            daily_quota=pick(self.daily_quota, base.daily_quota),
            max_queue=base.max_queue,
            by_scope=frozenset(name for name, value in own.items() if value is not None),
        )


def _styles(raw: Any) -> tuple[Style, ...]:
    """Stored styles ({name: {prompt, negative_prompt}}), or asdict's list of them."""
    if isinstance(raw, Mapping):
        items = [{"name": name, **texts} for name, texts in raw.items()]
    else:
        items = list(raw or ())
    styles = (
        Style(str(i["name"]), str(i.get("prompt", "")), str(i.get("negative_prompt", "")))
        for i in items
    )
    return tuple(sorted(styles, key=lambda style: style.name.lower()))


_POSITIVE_INTS = {"burst", "max_queued_per_user", "max_steps", "max_count", "max_pixels"}


def _check_setting(key: str, value: Any) -> Any:
    if value is None:
        return [] if key == "blocklist" else {} if key in ("nsfw", "styles") else None
    if key == "styles":
        if not isinstance(value, Mapping) or len(value) > MAX_STYLES:
            raise InvalidRequest(
                f"styles must map at most {MAX_STYLES} names to a prompt and a negative prompt."
            )
        checked = [
            check_style(name, texts.get("prompt", ""), texts.get("negative_prompt", ""))
            if isinstance(texts, Mapping)
            else check_style(name, None, None)
            for name, texts in value.items()
        ]
        return style_map(checked)
    if key == "nsfw":
        if not isinstance(value, Mapping):
            raise InvalidRequest("nsfw must map channel ids to refuse, spoiler or allow.")
        for channel, mode in value.items():
            if mode not in NSFW_MODES or not str(channel).strip():
                raise InvalidRequest(f"NSFW policy {mode!r} is not one of {', '.join(NSFW_MODES)}.")
        if len(value) > 500:
            raise InvalidRequest("nsfw may hold at most 500 channels.")
        return {str(channel).strip(): mode for channel, mode in value.items()}
    if key in ("allowed_models", "allowed_loras", "blocklist"):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            raise InvalidRequest(f"{key} must be a list of non-empty words.")
        words = list(dict.fromkeys(v.strip() for v in value))
        if len(words) > 500:
            raise InvalidRequest(f"{key} may hold at most 500 entries.")
        return words
    if key == "default_model":
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest("default_model must be a model name.")
        return value.strip()
    if key == "rate_per_minute":
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InvalidRequest("rate_per_minute must be a number greater than 0.")
        return float(value)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key == "daily_quota" and not (is_int and value >= 0):
        raise InvalidRequest("daily_quota must be a whole number, 0 for unlimited.")
    if key in _POSITIVE_INTS and not (is_int and value >= 1):
        raise InvalidRequest(f"{key} must be a whole number of at least 1.")
    return value


class AdmissionPolicy:
    def __init__(self, config: GenerationConfig) -> None:
        self.config = config

    # ---------------------------------------------------------------- numbers

    def _bounded(
        self,
        label: str,
        value: float,
        low: float,
        high: float,
        *,
        unit: str = "",
        who: str = "this service allows",
    ) -> float:
        """``value`` within [low, high], or clamped, or refused naming the limit and who set it
        ("Steps 50 is above the limit: this chat's admins allow at most 10 steps.")."""
        if low <= value <= high:
            return value
        if self.config.on_excess == "clamp":
            return min(max(value, low), high)
        units = f" {unit}" if unit else ""
        if value > high:
            raise InvalidRequest(
                f"{label} {_fmt(value)} is above the limit: {who} at most {_fmt(high)}{units}."
            )
        raise InvalidRequest(f"{label} {_fmt(value)} is below the minimum of {_fmt(low)}{units}.")

    def _size(
        self, request: DrawRequest, model: ModelRecord, settings: ScopeSettings, platform: str
    ) -> tuple[int, int]:
        if request.width is not None or request.height is not None:
            width = request.width if request.width is not None else model.default_width
            height = request.height if request.height is not None else model.default_height
        elif request.aspect:
            width, height = size_for_aspect(
                request.aspect, model.default_width, model.default_height
            )
            if min(width, height) < MIN_SIDE:  # small default sizes: keep the short side usable
                a, b = parse_aspect(request.aspect)
                long_side = round_to_multiple(MIN_SIDE * max(a, b) / min(a, b))
                width, height = (long_side, MIN_SIDE) if a >= b else (MIN_SIDE, long_side)
        else:
            width, height = model.default_width, model.default_height
        if width <= 0 or height <= 0:
            raise InvalidRequest(
                f"Size {width}x{height} is not valid: both sides must be positive."
            )
        return self.limit_size(width, height, settings, platform)

    def limit_size(
        self,
        width: int,
        height: int,
        settings: ScopeSettings,
        platform: str,
        *,
        label: str = "Size",
    ) -> tuple[int, int]:
        """``width`` x ``height`` within the admin's size limits: refused, or shrunk with
        ``on_excess = "clamp"``; multiples of 8. ``label`` names the size in refusals (the
        hires fix's final size is checked here too)."""
        g = self.config
        max_pixels = min(g.max_pixels, settings.max_pixels or g.max_pixels)
        too_big = width > g.max_width or height > g.max_height or width * height > max_pixels
        if too_big:
            if g.on_excess == "refuse":
                too_wide = width > g.max_width or height > g.max_height
                if not too_wide and _by_scope(settings.max_pixels, g.max_pixels):
                    who = who_allows(platform, by_scope=True)
                    raise InvalidRequest(
                        f"{label} {width}x{height} is larger than {who} (at most "
                        f"{max_pixels:,} pixels; this one is {width * height:,})."
                    )
                who = who_allows(platform, by_scope=False)
                raise InvalidRequest(
                    f"{label} {width}x{height} is larger than {who} "
                    f"(at most {g.max_width}x{g.max_height} and {max_pixels:,} pixels)."
                )
            scale = min(
                g.max_width / width, g.max_height / height, math.sqrt(max_pixels / (width * height))
            )
            width, height = int(width * scale), int(height * scale)
        if width < MIN_SIDE or height < MIN_SIDE:
            if g.on_excess == "refuse":
                raise InvalidRequest(
                    f"{label} {width}x{height} is too small: each side must be at least {MIN_SIDE}."
                )
            width, height = max(width, MIN_SIDE), max(height, MIN_SIDE)
        # Diffusion models work on multiples of 8; round down so limits still hold.
        return max(MIN_SIDE, width // 8 * 8), max(MIN_SIDE, height // 8 * 8)

    # ---------------------------------------------------------------- spec

    def build_spec(
        self,
        request: DrawRequest,
        model: ModelRecord,
        settings: ScopeSettings,
        init_image: str | None,
        random_seed: int,
        *,
        platform: str = "",
        refiner: Refiner | None = None,
    ) -> GenerationSpec:
        """The spec of ``request``; ``platform`` (the origin's) only words refusals: who set a
        limit ("this chat's admins allow at most 10 steps"). ``refiner``: the request's refiner
        stage, already paired with ``model`` by the Service (``generation.refiner``)."""
        g = self.config
        prompt = request.prompt.strip()
        if not prompt:
            raise InvalidRequest("The prompt is empty: describe what to draw.")
        prompt = self._text("Prompt", prompt)
        negative = self._text("Negative prompt", request.negative_prompt.strip())
        sampler = resolve_sampler(request.sampler or model.default_sampler)
        max_steps = min(g.max_steps, settings.max_steps or g.max_steps)
        steps_value = model.default_steps if request.steps is None else request.steps
        steps = int(
            self._bounded(
                "Steps",
                steps_value,
                1,
                max_steps,
                unit="steps",
                who=who_allows(platform, by_scope=_by_scope(settings.max_steps, g.max_steps)),
            )
        )
        cfg_value = model.default_cfg if request.cfg is None else request.cfg
        if not math.isfinite(cfg_value):
            raise InvalidRequest("CFG scale must be a number.")
        cfg = float(self._bounded("CFG scale", cfg_value, g.min_cfg, g.max_cfg))
        max_count = min(g.max_count, settings.max_count or g.max_count)
        count = int(
            self._bounded(
                "Count",
                1 if request.count is None else request.count,
                1,
                max_count,
                unit="pictures per request",
                who=who_allows(platform, by_scope=_by_scope(settings.max_count, g.max_count)),
            )
        )
        width, height = self._size(request, model, settings, platform)
        seed = random_seed if request.seed is None else request.seed
        if not 0 <= seed <= MAX_SEED:
            raise InvalidRequest(f"Seed must be between 0 and {MAX_SEED}.")
        strength = None
        mode = Mode.TXT2IMG
        if init_image is not None:
            mode = Mode.IMG2IMG
            strength = DEFAULT_IMG2IMG_STRENGTH if request.strength is None else request.strength
            if not 0.0 < strength <= 1.0:
                raise InvalidRequest("Strength must be greater than 0 and at most 1.")
        elif request.strength is not None:
            raise InvalidRequest("Strength only applies to image-to-image: attach an image.")
        if refiner is not None and init_image is not None:
            raise InvalidRequest(
                "The refiner finishes text-to-image pictures here: leave out the image, or the "
                "refiner."
            )
        if refiner is not None and request.hires is not None:
            raise InvalidRequest(
                "The refiner and the hires fix cannot be used together yet: choose one."
            )
        hires = None
        if request.hires is not None:
            if init_image is not None:
                raise InvalidRequest(
                    "The hires fix is for text-to-image: leave out the image, or upscale the "
                    "result."
                )
            hires = resolve_hires(
                request.hires,
                width,
                height,
                default_strength=g.upscale_strength,
                max_steps=max_steps,
                fit=lambda w, h: self.limit_size(
                    w, h, settings, platform, label="The hires fix's size"
                ),
            )
        return GenerationSpec(
            mode=mode,
            prompt=prompt,
            negative_prompt=negative,
            model=model.name,
            sampler=sampler,
            width=width,
            height=height,
            steps=steps,
            cfg=cfg,
            seed=seed,
            count=count,
            strength=strength,
            init_image=init_image,
            hires=hires,
            refiner=refiner,
            # New jobs read A1111's syntax; SD3/Flux keep plain text (generation.prompt_syntax).
            prompt_syntax=syntax_for_family(model_family(model).name),
        )

    def text(self, label: str, text: str) -> str:
        """``text`` within ``max_prompt_length`` (clamped or refused, as configured)."""
        return self._text(label, text)

    def _text(self, label: str, text: str) -> str:
        limit = self.config.max_prompt_length
        if len(text) <= limit:
            return text
        if self.config.on_excess == "clamp":
            return text[:limit]
        raise InvalidRequest(f"{label} is {len(text):,} characters; the limit is {limit:,}.")

    def check_upscale(self, spec: GenerationSpec) -> None:
        limit = self.config.max_upscale_pixels
        if spec.width * spec.height > limit:
            raise InvalidRequest(
                f"Upscaling would give {spec.width}x{spec.height}: this service allows upscales "
                f"of at most {limit:,} pixels."
            )

    def model_defaults(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``--default-*`` values for a model registration."""
        out: dict[str, Any] = {}
        if "sampler" in given and given["sampler"] is not None:
            out["default_sampler"] = resolve_sampler(str(given["sampler"]))
        if given.get("steps") is not None:
            steps = int(given["steps"])
            if not 1 <= steps <= self.config.max_steps:
                raise InvalidRequest(f"Default steps must be 1-{self.config.max_steps}.")
            out["default_steps"] = steps
        if given.get("cfg") is not None:
            cfg = float(given["cfg"])
            if not self.config.min_cfg <= cfg <= self.config.max_cfg:
                raise InvalidRequest(
                    f"Default CFG must be {self.config.min_cfg}-{self.config.max_cfg}."
                )
            out["default_cfg"] = cfg
        if given.get("width") is not None and given.get("height") is not None:
            width, height = int(given["width"]), int(given["height"])
            if width % 8 or height % 8 or width < MIN_SIDE or height < MIN_SIDE:
                raise InvalidRequest("Default size must be multiples of 8, at least 64x64.")
            if width * height > self.config.max_pixels:
                raise InvalidRequest("Default size is larger than generation.max_pixels.")
            out["default_width"], out["default_height"] = width, height
        return out

    # ---------------------------------------------------------------- limits

    def check_prompt(self, prompt: str, settings: ScopeSettings, *, platform: str = "") -> None:
        word = flagged_word(prompt, settings.blocklist)
        if word is not None:
            scope = SCOPE_WORDS.get(platform)
            who = f"this {scope}'s admins block" if scope else "this service blocks"
            raise BlockedPrompt(f"Your prompt contains a word {who} (\u201c{word}\u201d).", word)

    def check_queue(
        self,
        *,
        queued_total: int,
        queued_for_user: int,
        limits: EffectiveLimits,
        platform: str = "",
    ) -> None:
        if queued_total >= limits.max_queue:
            raise TooManyQueued(
                f"The queue is full ({queued_total} jobs waiting); try again in a few minutes."
            )
        if queued_for_user >= limits.max_queued_per_user:
            who = limits.who_allows("max_queued_per_user", platform)
            raise TooManyQueued(
                f"You already have {queued_for_user} jobs waiting: {who} at most "
                f"{limits.max_queued_per_user} per person; wait for one to finish or cancel one."
            )

    def day_start(self, now: datetime) -> datetime:
        return utc_day_start(now)

    def check_quota(
        self, used: int, limits: EffectiveLimits, now: datetime, platform: str = ""
    ) -> None:
        quota = limits.daily_quota
        if used >= quota:
            wait = seconds_until_utc_midnight(now)
            who = limits.who_allows("daily_quota", platform)
            raise QuotaExceeded(
                f"You have used your {quota} images for today ({who} {quota} a day); the quota "
                f"resets {format_retry(wait)} (midnight UTC).",
                retry_after=wait,
            )

    def check_rate(
        self,
        limiter: RateLimiter,
        key: str,
        now: float,
        *,
        who: str = "this service allows",
    ) -> None:
        """``who``: who set the rate ("this chat's admins allow"; see :func:`who_allows`)."""
        wait = limiter.try_acquire(key, now)
        if wait > 0:
            rate = describe_rate(limiter.rate_per_minute, limiter.burst)
            raise RateLimited(
                f"You are drawing too fast: {who} {rate}; try again {format_retry(wait)}.",
                retry_after=wait,
            )


def describe_rate(rate_per_minute: float, burst: int) -> str:
    """A rate limit in words: "at most 6 drawings a minute (3 at once)"."""
    count, period = rate_per_minute, "a minute"
    if rate_per_minute < 1:
        count, period = rate_per_minute * 60, "an hour"
    count = round(count, 2)
    return f"at most {_fmt(count)} drawing{'' if count == 1 else 's'} {period} ({burst} at once)"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


__all__ = [
    "DEFAULT_NSFW_WORDS",
    "NSFW_MODES",
    "AdmissionPolicy",
    "EffectiveLimits",
    "ScopeSettings",
    "check_nsfw",
    "check_text",
    "describe_rate",
    "flagged_word",
    "who_allows",
]
