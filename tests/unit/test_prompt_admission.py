"""Admission and A1111 prompt syntax: new jobs record "a1111"; the prompt length limit
(``generation.max_prompt_length``, in characters) applies to a prompt in A1111's syntax as to
any other, however many 75-token chunks it makes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from generation.config import GenerationConfig
from generation.errors import InvalidRequest
from generation.policy import AdmissionPolicy, ScopeSettings
from generation.requests import DrawRequest
from generation.spec import GenerationSpec
from storage.records import ModelRecord

MODEL = ModelRecord(
    name="demo",
    source="builtin:demo",
    kind="builtin",
    revision=None,
    config=None,
    default_width=64,
    default_height=64,
    default_steps=4,
    default_cfg=7.0,
    default_sampler="Euler a",
    is_default=True,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
LONG = ", ".join(["(masterpiece:1.2)", "[blurry]", "a castle BREAK at dusk"] * 20)


def _spec(prompt: str, limit: int = 1500) -> GenerationSpec:
    policy = AdmissionPolicy(GenerationConfig(max_prompt_length=limit))
    return policy.build_spec(DrawRequest(prompt=prompt), MODEL, ScopeSettings(), None, 1)


def test_new_jobs_are_admitted_with_a1111_syntax_and_the_prompt_as_typed() -> None:
    spec = _spec(LONG)
    assert spec.prompt_syntax == "a1111" and spec.prompt == LONG


def test_the_prompt_length_limit_still_applies() -> None:
    with pytest.raises(InvalidRequest, match="Prompt"):
        _spec(LONG, limit=len(LONG) - 1)
    assert _spec(LONG, limit=len(LONG)).prompt == LONG


@pytest.mark.parametrize(
    ("source", "syntax"),
    [("builtin:demo-sdxl", "a1111"), ("builtin:demo-sd3", "plain"), ("builtin:demo-flux", "plain")],
)
def test_sd3_and_flux_jobs_keep_plain_text(source: str, syntax: str) -> None:
    policy = AdmissionPolicy(GenerationConfig())
    model = replace(MODEL, source=source, default_sampler="Euler")
    spec = policy.build_spec(DrawRequest(prompt="a (castle:1.3)"), model, ScopeSettings(), None, 1)
    assert spec.prompt_syntax == syntax
