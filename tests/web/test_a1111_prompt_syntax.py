"""A1111 prompt syntax through the A1111-compatible API: ``(word:1.3)`` is read as A1111 reads
it, the infotext and ``info`` keep the prompt as typed, and ``/png-info`` gives it back."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.web.conftest import SMALL, client_app

Client = TestClient[Any, Any]
V1 = "/sdapi/v1"


async def _txt2img(client: Client, prompt: str) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    body = {"prompt": prompt, "negative_prompt": "[blurry]", "seed": 5, **SMALL}
    response = await client.post(f"{V1}/txt2img", json=body)
    assert response.status == 200, await response.text()
    result = await response.json()
    image = Image.open(io.BytesIO(base64.b64decode(result["images"][0]))).convert("RGB")
    return result, np.asarray(image, dtype=np.int16)


async def test_weighted_prompt_keeps_its_text_and_changes_the_picture(web_client: Client) -> None:
    typed = "a (castle:1.3) at dusk, ((sunset)) BREAK [fog]"
    result, weighted = await _txt2img(web_client, typed)
    info = json.loads(result["info"])
    assert info["prompt"] == typed and info["negative_prompt"] == "[blurry]"
    assert info["infotexts"][0].startswith(f"{typed}\nNegative prompt: [blurry]\n")
    job = await client_app(web_client).store.get_job(info["easel_job_id"])
    assert job is not None and job.spec.prompt_syntax == "a1111"

    parsed = await (
        await web_client.post(f"{V1}/png-info", json={"image": result["images"][0]})
    ).json()
    assert parsed["parameters"]["Prompt"] == typed
    assert parsed["parameters"]["Negative prompt"] == "[blurry]"

    _, plain_words = await _txt2img(web_client, "a castle at dusk, sunset BREAK fog")
    assert np.abs(weighted - plain_words).max() > 0
