"""Prompt styles, as AUTOMATIC1111 has them (pure): a named prompt and negative prompt that a
request's own prompts are put into.

A style's text with ``{prompt}`` in it has the request's prompt put there; without it, the
style's text is appended after a comma (A1111's ``apply_styles_to_prompt``). Several styles
apply in the order asked. Styles come from the scope's settings (a server's or chat's admins)
and from the config (``[generation.styles.NAME]``, every scope); a scope's style shadows a
global one of the same name.

The job stores the prompts with the styles applied (as A1111's infotext does), so a rerun
does not depend on the style still existing or being unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from generation.errors import InvalidRequest, shown

PLACEHOLDER = "{prompt}"
MAX_STYLES = 200  # per scope
MAX_NAME = 64
MAX_TEXT = 2000


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""

    def texts(self) -> dict[str, str]:
        """The style as settings, the admin API and A1111 write it (without its name)."""
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt}


def style_map(styles: Iterable[Style]) -> dict[str, dict[str, str]]:
    """Styles as a scope's settings store them: name -> texts."""
    return {style.name: style.texts() for style in styles}


def merge(style_text: str, text: str) -> str:
    """``text`` put into ``style_text``: at ``{prompt}``, else after it with a comma."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), style_text.strip()) if part)


def apply_styles(prompt: str, negative: str, styles: Sequence[Style]) -> tuple[str, str]:
    for style in styles:
        prompt = merge(style.prompt, prompt)
        negative = merge(style.negative_prompt, negative)
    return prompt, negative


def available(scope: Mapping[str, Style], everywhere: Mapping[str, Style]) -> dict[str, Style]:
    """Every style a scope may use, by lower-cased name (the scope's shadow global ones)."""
    styles = {name.lower(): style for name, style in everywhere.items()}
    styles.update({name.lower(): style for name, style in scope.items()})
    return styles


def resolve(names: Sequence[str], styles: Mapping[str, Style]) -> list[Style]:
    """The styles ``names`` (case-insensitive, each once), or a refusal listing what exists."""
    chosen: list[Style] = []
    for name in dict.fromkeys(n.strip().lower() for n in names):
        style = styles.get(name)
        if style is None:
            names_here = ", ".join(sorted(s.name for s in styles.values())) or "none yet"
            raise InvalidRequest(f"Unknown style {shown(name)}. Styles here: {names_here}.")
        chosen.append(style)
    return chosen


def check_style(name: object, prompt: object, negative: object) -> Style:
    """A style an admin defines, or a refusal saying what is wrong."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise InvalidRequest(f"A style needs a name of 1-{MAX_NAME} characters.")
    if any(ch in name for ch in "\n\r\t"):
        raise InvalidRequest("A style's name is one line.")
    for label, text in (("prompt", prompt), ("negative prompt", negative)):
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise InvalidRequest(
                f"A style's {label} must be text of at most {MAX_TEXT} characters."
            )
    assert isinstance(prompt, str) and isinstance(negative, str)
    if not prompt.strip() and not negative.strip():
        raise InvalidRequest(f"Style {shown(name.strip())} needs a prompt or a negative prompt.")
    return Style(name.strip(), prompt, negative)
