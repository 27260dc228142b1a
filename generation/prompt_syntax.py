"""AUTOMATIC1111's prompt syntax: emphasis weights and ``BREAK``. PURE (no torch).

``parse_attention`` reads a prompt the way A1111's ``prompt_parser.parse_prompt_attention`` does
(the same tokens, the same order of float multiplications, so the same weights to the last bit)
and returns ``(text, weight)`` pairs; :mod:`generation.backend.prompt_encoding` turns them into
text-encoder embeddings (75-token chunks, weights multiplied in, the mean restored).

    >>> parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")[:2]
    [('a ', 1.0), ('house', 1.5730000000000004)]

The rules:

* ``(text)`` multiplies the weight of ``text`` by 1.1, ``[text]`` divides it by 1.1; they nest
  (``((text))`` = 1.21); ``(text:1.3)`` multiplies by 1.3 (any ``[+-]digits.digits``).
* ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; a lone ``\\`` is dropped.
* An unclosed ``(`` or ``[`` applies to the rest of the prompt; an unopened ``)`` or ``]`` is
  text.
* ``BREAK`` (a whole word, upper case) ends the current 75-token chunk: it comes out as the pair
  ``("BREAK", -1.0)`` (:data:`BREAK`).
* Runs of equal weights are merged; an empty prompt is ``[("", 1.0)]``.
* ``<lora:name:0.8>`` tags have no brackets A1111 reads and pass through as text (the LoRA code
  takes them out before encoding).

One difference from A1111: a weight that is not a number (``(word:1.2.3)``) makes A1111 raise
``ValueError`` mid-render; here the ``:1.2.3)`` is read as text, as an unopened one is.

A job records the rules its prompt was read with (``GenerationSpec.prompt_syntax``): jobs admitted
before issue 16 are ``"plain"`` (the text goes to the pipeline as it is), new ones ``"a1111"``
for the Stable Diffusion families (:func:`syntax_for_family`).
"""

from __future__ import annotations

import re

# What a BREAK comes out as: A1111's marker pair.
BREAK = ("BREAK", -1.0)
ROUND = 1.1
SQUARE = 1 / 1.1
# The families whose prompts stay text: T5 encoders (SD3, Flux), which A1111 does not weight.
PLAIN_FAMILIES = frozenset({"sd3", "flux"})

_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]?        # an escape: \( \) \[ \] \\ , or a lone backslash (dropped)
    | \(                 # opens emphasis
    | \[                 # opens de-emphasis
    | :([+-]?[.\d]+)\)   # closes emphasis with a weight
    | \)
    | \]
    | [^\\()\[\]:]+      # plain text
    | :                  # a colon that closes nothing
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (fragment, weight) pairs; ``BREAK`` as :data:`BREAK`."""
    parts: list[list[str | float]] = []  # [text, weight], mutated in place like A1111's
    rounds: list[int] = []  # where each open "(" started in ``parts``
    squares: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for part in parts[start:]:
            part[1] = float(part[1]) * factor

    for match in _TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            parts.append([token[1:], 1.0])
        elif token == "(":
            rounds.append(len(parts))
        elif token == "[":
            squares.append(len(parts))
        elif weight is not None and rounds and _is_number(weight):
            multiply(rounds.pop(), float(weight))
        elif token == ")" and rounds:
            multiply(rounds.pop(), ROUND)
        elif token == "]" and squares:
            multiply(squares.pop(), SQUARE)
        else:
            for i, piece in enumerate(_BREAK.split(token)):
                if i:
                    parts.append(list(BREAK))
                parts.append([piece, 1.0])
    for start in rounds:
        multiply(start, ROUND)
    for start in squares:
        multiply(start, SQUARE)
    if not parts:
        parts = [["", 1.0]]
    merged: list[list[str | float]] = [parts[0]]
    for part in parts[1:]:
        if merged[-1][1] == part[1]:
            merged[-1][0] = str(merged[-1][0]) + str(part[0])
        else:
            merged.append(part)
    return [(str(t), float(w)) for t, w in merged]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_break(part: tuple[str, float]) -> bool:
    return part[0] == BREAK[0] and part[1] == BREAK[1]


def uses_syntax(text: str) -> bool:
    """Whether ``text`` reads differently under A1111's rules than as plain text: brackets,
    escapes or ``BREAK`` (A1111 writes ``Emphasis`` to the infotext on the same test)."""
    return parse_attention(text) != [(text, 1.0)]


def syntax_for_family(family: str | None) -> str:
    """The prompt syntax a new job on a model of ``family`` is admitted with: ``"plain"`` for SD3
    and Flux (T5 encoders, no weighting), ``"a1111"`` for the rest. That includes "other": a Hub
    model not downloaded yet cannot tell its family, and the renderer reads an "a1111" prompt
    with A1111's rules only on a Stable Diffusion 1.x/2.x/XL pipeline (any other gets the text),
    so its first job and its reruns agree."""
    return "plain" if family in PLAIN_FAMILIES else "a1111"
