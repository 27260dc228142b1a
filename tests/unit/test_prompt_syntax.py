"""A1111's prompt syntax: its own doctests for ``parse_prompt_attention``, then edge cases."""

from __future__ import annotations

import doctest

import pytest

import generation.prompt_syntax as prompt_syntax
from generation.prompt_syntax import (
    BREAK,
    is_break,
    parse_attention,
    syntax_for_family,
    uses_syntax,
)


def test_module_doctest() -> None:
    assert doctest.testmod(prompt_syntax).failed == 0


# AUTOMATIC1111 stable-diffusion-webui, modules/prompt_parser.py, parse_prompt_attention's
# doctests: input and the expected pairs, floats to the last bit.
A1111_DOCTESTS = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), A1111_DOCTESTS)
def test_a1111_doctests(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(word)", [("word", 1.1)]),
        ("((word))", [("word", 1.2100000000000002)]),
        ("(word:1.3)", [("word", 1.3)]),
        ("(word:-0.5)", [("word", -0.5)]),
        ("[word]", [("word", 1 / 1.1)]),
        ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
        ("[unbalanced", [("unbalanced", 1 / 1.1)]),
        ("closed) and] unopened", [("closed) and] unopened", 1.0)]),
        ("a:b", [("a:b", 1.0)]),
        ("word:1.3)", [("word:1.3)", 1.0)]),  # a weight with no "(" is text
        ("\\(\\)\\[\\]\\\\", [("()[]\\", 1.0)]),
        ("lone \\ slash", [("lone  slash", 1.0)]),  # A1111 drops a lone backslash
        ("", [("", 1.0)]),
        ("()", [("", 1.0)]),
        ("(word:1.2.3)", [("word:1.2.3)", 1.1)]),  # not a number: text (A1111 raises)
        ("(a [b] c)", [("a ", 1.1), ("b", 1.1 / 1.1), (" c", 1.1)]),
    ],
)
def test_edge_cases(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_attention(text) == expected


def test_break_splits_and_is_marked() -> None:
    parts = parse_attention("a castle BREAK at dusk")
    assert parts == [("a castle", 1.0), BREAK, ("at dusk", 1.0)]
    assert is_break(parts[1]) and not is_break(("BREAK", 1.0))
    # only the whole upper-case word: "BREAKING" and "break" are text
    assert parse_attention("BREAKING break") == [("BREAKING break", 1.0)]
    # inside emphasis the pieces keep the weight; the marker keeps -1 (A1111 multiplies it)
    assert parse_attention("(a BREAK b)") == [("a", 1.1), ("BREAK", -1.1), ("b", 1.1)]


def test_lora_tags_pass_as_text() -> None:
    text = "a cat <lora:pixel art:0.8> <lora:x:1>, (best:1.2)"
    parts = parse_attention(text)
    assert parts == [("a cat <lora:pixel art:0.8> <lora:x:1>, ", 1.0), ("best", 1.2)]
    assert parse_attention("<lora:x:0.8>") == [("<lora:x:0.8>", 1.0)]


def test_uses_syntax() -> None:
    assert not uses_syntax("a photo of a cat, best quality")
    assert uses_syntax("a (cat)") and uses_syntax("a \\(cat") and uses_syntax("a BREAK b")


def test_families() -> None:
    assert syntax_for_family("sd1") == syntax_for_family("sdxl") == "a1111"
    assert syntax_for_family(None) == "a1111"
    assert syntax_for_family("sd3") == syntax_for_family("flux") == "plain"
    assert syntax_for_family("other") == "a1111"  # the renderer decides by pipeline class
