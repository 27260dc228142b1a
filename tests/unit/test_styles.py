"""Prompt styles (generation.styles, pure): A1111's way of putting a prompt into a style, the
names a scope may use, and the refusals."""

from __future__ import annotations

import pytest

from bot.grammar import GrammarError, format_draw, parse_draw
from generation.errors import InvalidRequest
from generation.policy import ScopeSettings
from generation.styles import Style, apply_styles, available, check_style, merge, resolve

CINEMATIC = Style("Cinematic", "{prompt}, cinematic lighting, 35mm", "cartoon")
INK = Style("ink", "ink drawing", "")


def test_a_style_takes_the_prompt_at_its_placeholder_or_is_appended() -> None:
    assert merge("{prompt}, cinematic", "a castle") == "a castle, cinematic"
    assert merge("ink drawing", "a castle") == "a castle, ink drawing"
    assert merge("ink drawing", "") == "ink drawing"
    assert merge("", "a castle") == "a castle"
    prompt, negative = apply_styles("a castle", "blurry", [CINEMATIC, INK])
    assert prompt == "a castle, cinematic lighting, 35mm, ink drawing"
    assert negative == "blurry, cartoon"


def test_a_scopes_style_shadows_a_global_one_and_names_are_case_insensitive() -> None:
    mine = Style("ink", "my ink", "")
    styles = available({"ink": mine}, {"INK": INK, "Cinematic": CINEMATIC})
    assert resolve(["INK", "cinematic", "ink"], styles) == [mine, CINEMATIC]
    with pytest.raises(InvalidRequest, match=r"Unknown style 'noir'\. Styles here: Cinematic, ink"):
        resolve(["noir"], styles)
    with pytest.raises(InvalidRequest, match="none yet"):
        resolve(["noir"], {})


@pytest.mark.parametrize(
    ("name", "prompt", "negative", "reason"),
    [
        ("", "x", "", "1-64 characters"),
        ("a" * 65, "x", "", "1-64 characters"),
        ("two\nlines", "x", "", "one line"),
        ("empty", "", " ", "needs a prompt or a negative prompt"),
        ("long", "x" * 2001, "", "at most 2000"),
        ("odd", 5, "", "must be text"),
    ],
)
def test_bad_styles_are_refused(name: str, prompt: object, negative: str, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        check_style(name, prompt, negative)


def test_scope_settings_keep_styles_and_check_them() -> None:
    settings = ScopeSettings().updated(
        {"styles": {"ink": {"prompt": "ink drawing"}, "noir": {"negative_prompt": "colour"}}}
    )
    assert [s.name for s in settings.styles] == ["ink", "noir"]
    again = ScopeSettings.from_dict(settings.to_dict())
    assert again == settings and again.updated({"burst": 2}).styles == settings.styles
    assert ScopeSettings.from_dict(settings.to_dict()).updated({"styles": None}).styles == ()
    with pytest.raises(InvalidRequest, match="needs a prompt"):
        settings.updated({"styles": {"x": {}}})
    with pytest.raises(InvalidRequest, match="styles must map"):
        settings.updated({"styles": ["ink"]})


def test_the_grammar_takes_style_names_and_writes_them_back() -> None:
    request = parse_draw("a castle --style Cinematic, ink --seed 3")
    assert request.styles == ("Cinematic", "ink")
    assert parse_draw(format_draw(request)).styles == request.styles
    assert parse_draw("a castle --styles noir").styles == ("noir",)
    with pytest.raises(GrammarError, match="needs a style's name"):
        parse_draw("a castle --style ,")
