from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.grammar import EMPTY_PROMPT_MESSAGE, GrammarError, format_draw, merge_fields, parse_draw
from generation.errors import InvalidRequest
from generation.requests import DrawRequest, HiresRequest
from generation.samplers import SAMPLERS
from generation.spec import MAX_SEED

# --- happy paths ---------------------------------------------------------------------------


def test_plain_prompt_without_command() -> None:
    assert parse_draw("a castle at dusk") == DrawRequest(prompt="a castle at dusk")


@pytest.mark.parametrize(
    "text",
    ["/draw a cat", "/draw@EaselBot a cat", "/imagine a cat", "/DRAW a cat", "  /draw a cat  "],
)
def test_command_prefixes(text: str) -> None:
    assert parse_draw(text).prompt == "a cat"


def test_prefix_must_be_a_whole_word() -> None:
    assert parse_draw("/drawing a cat").prompt == "/drawing a cat"


def test_all_options() -> None:
    request = parse_draw(
        "/draw a castle at dusk --no blurry --no text, watermark --seed 42 --steps 30 --cfg 7.5"
        " --sampler DPM++ 2M Karras --size 512x768 --model sd15 --n 2 --strength 0.6"
    )
    assert request == DrawRequest(
        prompt="a castle at dusk",
        negative_prompt="blurry, text, watermark",
        seed=42,
        steps=30,
        cfg=7.5,
        width=512,
        height=768,
        sampler="DPM++ 2M Karras",
        model="sd15",
        count=2,
        strength=0.6,
    )


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("x --guidance 5", "cfg", 5.0),
        ("x --aspect 16:9", "aspect", "16:9"),
        ("x --ar 3x2", "aspect", "3:2"),
        ("x --count 3", "count", 3),
        ("x --batch 3", "count", 3),
        ("x --SEED 7", "seed", 7),
        ("x --seed=7", "seed", 7),
        ("x --cfg 7,5", "cfg", 7.5),
        ("x --seed -1", "seed", None),
        ("x --seed 4294967295", "seed", MAX_SEED),
        ("x --cfg 0", "cfg", 0.0),
        ("x --strength 1", "strength", 1.0),
        ("x --sampler euler a", "sampler", "Euler a"),
        ('x --sampler "Euler a"', "sampler", "Euler a"),
        ("x --sampler k_dpmpp_2m", "sampler", "DPM++ 2M"),
        ('x --model "my model: v2"', "model", "my model: v2"),
    ],
)
def test_option_values(text: str, field: str, value: object) -> None:
    assert getattr(parse_draw(text), field) == value


@pytest.mark.parametrize("dash", ["—", "–", "—-"])
def test_phone_dashes_start_options(dash: str) -> None:
    request = parse_draw(f"a cat {dash}seed 5 {dash}no dogs")
    assert (request.prompt, request.seed, request.negative_prompt) == ("a cat", 5, "dogs")


def test_phone_dash_before_an_unknown_word_is_prose() -> None:
    assert parse_draw("a knight —armored on a horse").prompt == "a knight —armored on a horse"


def test_dashes_inside_words_are_prose() -> None:
    assert parse_draw("a state-of-the-art--robot --seed 1").prompt == "a state-of-the-art--robot"


def test_option_value_runs_until_next_option() -> None:
    request = parse_draw("x --no ugly hands, extra fingers --model my model v2 --seed 3")
    assert request.negative_prompt == "ugly hands, extra fingers"
    assert request.model == "my model v2"


def test_quoted_prompt_hides_options_and_pipes() -> None:
    request = parse_draw('"a poster saying --no war | peace" --seed 3')
    assert request.prompt == "a poster saying --no war | peace"
    assert request.negative_prompt == ""


def test_curly_quotes_and_escapes() -> None:
    assert parse_draw("“a cat --n 3” --n 2").prompt == "a cat --n 3"
    assert parse_draw(r'"say \"hi\" \\ there"').prompt == 'say "hi" \\ there'


def test_partial_quotes_stay_literal() -> None:
    assert parse_draw('a sign saying "open" --seed 1').prompt == 'a sign saying "open"'


def test_unbalanced_quote_is_literal() -> None:
    request = parse_draw('a 12" vinyl record --seed 5')
    assert (request.prompt, request.seed) == ('a 12" vinyl record', 5)


def test_pipe_shorthand() -> None:
    request = parse_draw("/draw a cat | dog, blurry")
    assert (request.prompt, request.negative_prompt) == ("a cat", "dog, blurry")


def test_pipe_inside_brackets_is_alternation() -> None:
    request = parse_draw("a [cat|dog] in {rain|snow} | blurry")
    assert (request.prompt, request.negative_prompt) == ("a [cat|dog] in {rain|snow}", "blurry")


def test_pipe_is_literal_when_no_is_given() -> None:
    request = parse_draw("a cat | dog --no blurry")
    assert (request.prompt, request.negative_prompt) == ("a cat | dog", "blurry")


def test_grammar_error_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        parse_draw("")


# --- every error path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "/draw", "/draw   ", "--seed 4", '""', "| blurry", "/draw@Bot"]
)
def test_empty_prompt(text: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert info.value.message == EMPTY_PROMPT_MESSAGE
    assert str(info.value) == (
        "Write what to draw after /draw, e.g. /draw a castle at dusk --no blurry"
    )


def test_unknown_option_lists_known_ones() -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw("a cat --foo 3")
    assert str(info.value) == (
        "Unknown option --foo. Known options: --no, --seed, --steps, --cfg (--guidance), "
        "--ar (--aspect), --size, --sampler, --model, --n (--count, --batch), --strength, "
        "--hires, --style (--styles), --refiner, --switch-at (--refiner-switch-at)."
    )
    assert info.value.option == "--foo"


def test_unknown_option_suggests_a_close_one() -> None:
    with pytest.raises(GrammarError, match=r"^Unknown option --sed\. Did you mean --seed\?"):
        parse_draw("a cat --sed 3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x --seed",
            "--seed needs a value: a whole number from 0 to 4294967295, or -1 for "
            "random (e.g. --seed 42).",
        ),
        (
            "x --no --seed 1",
            "--no needs a value: the things to keep out of the picture (e.g. --no blurry, text).",
        ),
        (
            'x --model ""',
            "--model needs a value: the name of an installed model (e.g. --model sd15).",
        ),
        (
            "x --sampler   --n 2",
            "--sampler needs a value: a sampler name such as "
            "DPM++ 2M Karras or Euler a (e.g. --sampler Euler a).",
        ),
    ],
)
def test_missing_value(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x --seed abc",
            "--seed must be a whole number from 0 to 4294967295, or -1 for random "
            "(e.g. --seed 42); got 'abc'.",
        ),
        (
            "x --steps 20.5",
            "--steps must be a whole number of at least 1 (e.g. --steps 30); got '20.5'.",
        ),
        ("x --n two", "--n must be a whole number of at least 1 (e.g. --n 4); got 'two'."),
        (
            "x --count 2 cats",
            "--count must be a whole number of at least 1 (e.g. --n 4); got '2 cats'.",
        ),
        ("x --cfg high", "--cfg must be a number of at least 0 (e.g. --cfg 7); got 'high'."),
        ("x --cfg nan", "--cfg must be a number of at least 0 (e.g. --cfg 7); got 'nan'."),
        (
            "x --strength 0.5.1",
            "--strength must be a number greater than 0 and at most 1 "
            "(e.g. --strength 0.6); got '0.5.1'.",
        ),
    ],
)
def test_non_numeric_value(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x --seed 4294967296",
            "--seed is out of range: it must be a whole number from 0 to "
            "4294967295, or -1 for random (e.g. --seed 42); got 4294967296.",
        ),
        (
            "x --seed -2",
            "--seed is out of range: it must be a whole number from 0 to "
            "4294967295, or -1 for random (e.g. --seed 42); got -2.",
        ),
        (
            "x --steps 0",
            "--steps is out of range: it must be a whole number of at least 1 "
            "(e.g. --steps 30); got 0.",
        ),
        (
            "x --steps -5",
            "--steps is out of range: it must be a whole number of at least 1 "
            "(e.g. --steps 30); got -5.",
        ),
        (
            "x --n 0",
            "--n is out of range: it must be a whole number of at least 1 (e.g. --n 4); got 0.",
        ),
        (
            "x --cfg -1",
            "--cfg is out of range: it must be a number of at least 0 (e.g. --cfg 7); got -1.",
        ),
        (
            "x --cfg 1e999",
            "--cfg is out of range: it must be a number of at least 0 (e.g. --cfg 7); got 1e999.",
        ),
        (
            "x --strength 0",
            "--strength is out of range: it must be a number greater than 0 "
            "and at most 1 (e.g. --strength 0.6); got 0.",
        ),
        (
            "x --strength 1.5",
            "--strength is out of range: it must be a number greater than 0 "
            "and at most 1 (e.g. --strength 0.6); got 1.5.",
        ),
    ],
)
def test_out_of_range(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x --seed 1 --seed 2", "--seed was given twice; give it once."),
        ("x --cfg 7 --guidance 8", "--guidance and --cfg are the same option; give it once."),
        ("x --n 1 --batch 2", "--batch and --n are the same option; give it once."),
    ],
)
def test_duplicate_option(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x --ar 9:1", "--ar: Aspect ratio 9:1 is too extreme; it must lie between 1:4 and 4:1."),
        (
            "x --aspect 1:5",
            "--aspect: Aspect ratio 1:5 is too extreme; it must lie between 1:4 and 4:1.",
        ),
        (
            "x --ar wide",
            "--ar: Aspect ratio must be two whole numbers like 3:2 or 16:9; got 'wide'.",
        ),
        (
            "x --ar 0:1",
            "--ar: Both sides of an aspect ratio must be at least 1, e.g. 3:2; got '0:1'.",
        ),
        ("x --size 5x", "--size: Size must be WIDTHxHEIGHT in pixels, e.g. 512x768; got '5x'."),
        (
            "x --size 0x512",
            "--size: Width and height must both be at least 1 pixel, e.g. 512x768; got '0x512'.",
        ),
    ],
)
def test_bad_shapes(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message


def test_size_and_aspect_exclude_each_other() -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw("x --size 512x512 --ar 1:1")
    assert str(info.value) == (
        "Use either --size or --ar, not both: --size sets the exact size in pixels, --ar keeps "
        "the server's usual size and changes its shape."
    )


def test_unknown_sampler_lists_choices() -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw("x --sampler Eulr")
    assert str(info.value) == (
        "--sampler: Unknown sampler 'Eulr'. Choose one of: " + ", ".join(SAMPLERS) + "."
    )
    assert info.value.option == "--sampler"


# --- format_draw ----------------------------------------------------------------------------


def test_format_simple() -> None:
    request = DrawRequest(prompt="a cat", negative_prompt="blurry", seed=1, cfg=7.0, aspect="3:2")
    assert format_draw(request) == "/draw a cat --no blurry --seed 1 --cfg 7.0 --ar 3:2"
    assert format_draw(request, command="") == "a cat --no blurry --seed 1 --cfg 7.0 --ar 3:2"


def test_format_quotes_when_needed() -> None:
    assert format_draw(DrawRequest(prompt="a | b"), command="") == '"a | b"'
    assert format_draw(DrawRequest(prompt="/draw x"), command="") == '"/draw x"'
    assert format_draw(DrawRequest(prompt='say "hi"'), command="") == r'"say \"hi\""'


def test_format_refuses_half_a_size() -> None:
    with pytest.raises(ValueError, match="width and height"):
        format_draw(DrawRequest(prompt="x", width=512))


# --- properties ---------------------------------------------------------------------------

_CHARS = st.sampled_from(list("abc xyz,:|-—–=\"“”\\'[](){}/@\n\t"))
_WORDS = st.sampled_from(["--no", "--seed", " --n ", "/draw", "—seed ", "-1", "3:2"])
_text = st.lists(_CHARS | _WORDS, max_size=20).map("".join) | st.text(max_size=40)


@settings(max_examples=500)
@given(st.lists(_text | st.sampled_from(["--seed 5", "--ar 3:2", "--no x", " | "]), max_size=6))
def test_fuzz_only_grammar_errors(pieces: list[str]) -> None:
    text = " ".join(pieces)
    try:
        request = parse_draw(text)
    except GrammarError as error:
        assert error.message
    else:
        assert request.prompt.strip()


_nonblank = _text.filter(lambda s: s.strip() != "")


@st.composite
def _aspects(draw: st.DrawFn) -> str:
    w = draw(st.integers(1, 64))
    h = draw(st.integers(max(1, -(-w // 4)), w * 4))
    return f"{w}:{h}"


@st.composite
def _requests(draw: st.DrawFn) -> DrawRequest:
    shape = draw(st.sampled_from(["none", "size", "aspect"]))
    width = height = None
    aspect = None
    if shape == "size":
        width, height = draw(st.integers(1, 999_999)), draw(st.integers(1, 999_999))
    elif shape == "aspect":
        aspect = draw(_aspects())
    return DrawRequest(
        prompt=draw(_nonblank),
        negative_prompt=draw(st.just("") | _nonblank),
        seed=draw(st.none() | st.integers(0, MAX_SEED)),
        steps=draw(st.none() | st.integers(1, 10_000)),
        cfg=draw(st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False)),
        width=width,
        height=height,
        aspect=aspect,
        sampler=draw(st.none() | st.sampled_from(list(SAMPLERS))),
        model=draw(st.none() | _nonblank),
        count=draw(st.none() | st.integers(1, 64)),
        strength=draw(
            st.none() | st.floats(min_value=0, max_value=1, exclude_min=True, allow_nan=False)
        ),
        hires=draw(
            st.none()
            | st.builds(
                HiresRequest,
                scale=st.floats(min_value=1, max_value=4, exclude_min=True, allow_nan=False),
            )
        ),
        refiner=draw(st.none() | _nonblank),
        refiner_switch_at=draw(
            st.none() | st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True)
        ),
    )


@settings(max_examples=500)
@given(_requests(), st.sampled_from(["/draw", "/imagine", ""]))
def test_format_parse_round_trip(request: DrawRequest, command: str) -> None:
    assert parse_draw(format_draw(request, command=command)) == request


# --- --hires (A1111's hires fix) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("a castle --hires", 2.0),  # alone: 2
        ("a castle --hires --seed 4", 2.0),
        ("a castle --HIRES 3", 3.0),
        ("a castle --hires=1.5", 1.5),
        ("a castle --hires 4", 4.0),
        ("a castle --hires 1.5x", 1.5),
        ("a castle --hires 3 ×", 3.0),
        ("a castle \u2014hires 2,5", 2.5),  # a phone's dash and decimal comma
    ],
)
def test_hires_scale(text: str, scale: float) -> None:
    request = parse_draw(text)
    assert request.prompt == "a castle" and request.hires == HiresRequest(scale=scale)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x --hires 1", "--hires is out of range: it must be a scale more than 1 and at most 4 "
         "(alone: 2) (e.g. --hires 2); got 1."),
        ("x --hires 4.01", "--hires is out of range: it must be a scale more than 1 and at most "
         "4 (alone: 2) (e.g. --hires 2); got 4.01."),
        ("x --hires 0", "--hires is out of range: it must be a scale more than 1 and at most 4 "
         "(alone: 2) (e.g. --hires 2); got 0."),
        ("x --hires big", "--hires must be a scale more than 1 and at most 4 (alone: 2) "
         "(e.g. --hires 2); got 'big'."),
        ("x --hires x", "--hires must be a scale more than 1 and at most 4 (alone: 2) "
         "(e.g. --hires 2); got 'x'."),
        ("x --hires inf", "--hires must be a scale more than 1 and at most 4 (alone: 2) "
         "(e.g. --hires 2); got 'inf'."),
        ("x --hires 2 --hires 3", "--hires was given twice; give it once."),
    ],
)  # fmt: skip
def test_hires_refusals(text: str, message: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message and info.value.option == "--hires"


def test_hires_typed_in_the_prompt_wins_over_the_field() -> None:
    fields = DrawRequest(prompt="", hires=HiresRequest(scale=3, upscaler="Latent"))
    assert merge_fields(parse_draw("x --hires 1.5"), fields).hires == HiresRequest(scale=1.5)
    assert merge_fields(parse_draw("x"), fields).hires == fields.hires
    assert format_draw(parse_draw("x --hires")) == "/draw x --hires 2.0"


# --- --refiner / --switch-at (SDXL's refiner stage) ------------------------------------------


def test_refiner_and_switch() -> None:
    request = parse_draw("a castle --refiner xl-refiner --switch-at 0.7 --seed 3")
    assert (request.prompt, request.refiner, request.refiner_switch_at) == (
        "a castle",
        "xl-refiner",
        0.7,
    )
    assert parse_draw("a castle \u2014refiner-switch-at 0,9").refiner_switch_at == 0.9
    assert format_draw(request) == "/draw a castle --seed 3 --refiner xl-refiner --switch-at 0.7"
    fields = DrawRequest(prompt="", refiner="other", refiner_switch_at=0.5)
    merged = merge_fields(parse_draw("x --refiner typed"), fields)
    assert (merged.refiner, merged.refiner_switch_at) == ("typed", 0.5)  # typed wins, per option


@pytest.mark.parametrize(
    ("text", "message", "option"),
    [
        ("x --switch-at 1", "--switch-at is out of range: it must be a number more than 0 and "
         "less than 1 (the share of the steps before the refiner) (e.g. --switch-at 0.8); got 1.",
         "--switch-at"),
        ("x --switch-at 0", "--switch-at is out of range: it must be a number more than 0 and "
         "less than 1 (the share of the steps before the refiner) (e.g. --switch-at 0.8); got 0.",
         "--switch-at"),
        ("x --switch-at soon", "--switch-at must be a number more than 0 and less than 1 (the "
         "share of the steps before the refiner) (e.g. --switch-at 0.8); got 'soon'.",
         "--switch-at"),
        ("x --refiner", "--refiner needs a value: the name of an installed SDXL refiner "
         "(e.g. --refiner xl-refiner).", "--refiner"),
    ],
)  # fmt: skip
def test_refiner_refusals(text: str, message: str, option: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_draw(text)
    assert str(info.value) == message and info.value.option == option
