"""LoRA and textual-inversion embeddings on a resident pipeline.

    state = AdapterState()                    # one per resident pipeline
    jobs = state.apply(pipe, jobs)            # before every pipeline call of a batch

LoRA: each file is loaded once per resident pipeline with diffusers' ``load_lora_weights``
(``adapter_name`` = the registered name) and stays loaded; every batch then activates its own
set with ``set_adapters(names, weights)`` (``enable_lora`` first), and a batch with none runs
with ``disable_lora()``. A batch shares one LoRA set (it is part of ``spec.batch_key()``).

Embeddings: ``load_textual_inversion(path, token=name)`` adds the name to the tokenizer, which
then applies it to *any* prompt holding the word. So the embeddings loaded are exactly the
batch's: when its set differs from the loaded one, all are unloaded
(``unload_textual_inversion``) and the batch's loaded (small files: milliseconds); an older
job whose prompt holds the word as plain text therefore renders as it did.

img2img, inpainting and the hires fix run pipelines made with ``from_pipe`` from the resident
one: they share its UNet, text encoder and tokenizer, so what is set here applies to them.

The jobs come back with ``<lora:...>`` tags removed from their prompts (only jobs that have
LoRA: see ``generation.addon_prompts``); prompt encoders see the stripped text.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from generation.addon_files import current_hash
from generation.addon_prompts import strip_lora_tags
from generation.errors import GenerationFailed
from generation.render import AddOnFile, RenderJob
from generation.spec import AddOn


@dataclass
class AdapterState:
    """What is loaded into one resident pipeline."""

    loras: dict[str, str] = field(default_factory=dict)  # adapter name -> file hash
    lora_enabled: bool = False
    embeddings: tuple[tuple[str, str], ...] = ()  # (token, file hash), loaded now

    def apply(self, pipe: Any, jobs: list[RenderJob]) -> list[RenderJob]:
        """Set ``pipe`` up for ``jobs`` (one batch: same add-ons); return the jobs with their
        prompts as the text encoder must see them."""
        job = jobs[0]
        spec = job.spec
        files = {(f.kind, f.name): f for f in job.addon_files}
        self._set_loras(pipe, [(_file(files, "lora", a), a) for a in spec.loras])
        self._set_embeddings(pipe, [_file(files, "embedding", a) for a in spec.embeddings])
        if not spec.loras:
            return jobs
        return [
            replace(j, spec=replace(j.spec, prompt=strip_lora_tags(j.spec.prompt))) for j in jobs
        ]

    def _set_loras(self, pipe: Any, wanted: list[tuple[AddOnFile, AddOn]]) -> None:
        if not wanted:
            if self.lora_enabled:
                pipe.disable_lora()
                self.lora_enabled = False
            return
        self.lora_enabled = True  # from here on: a later batch without LoRA disables them
        for file, _ in wanted:
            if self.loras.get(file.name) == file.sha256:
                continue
            if file.name in self.loras:  # registered again with another file
                pipe.delete_adapters([file.name])
                del self.loras[file.name]
            _check_hash(file)
            try:
                pipe.load_lora_weights(file.path, adapter_name=file.name)
            except Exception:  # a half-loaded adapter would block the name next time
                with contextlib.suppress(Exception):
                    pipe.delete_adapters([file.name])
                raise
            self.loras[file.name] = file.sha256
        pipe.enable_lora()
        pipe.set_adapters([f.name for f, _ in wanted], [a.weight for _, a in wanted])
        self.lora_enabled = True

    def _set_embeddings(self, pipe: Any, wanted: list[AddOnFile]) -> None:
        key = tuple((f.name, f.sha256) for f in wanted)
        if key == self.embeddings:
            return
        if self.embeddings:
            _unload_embeddings(pipe)
            self.embeddings = ()
        try:
            for file in wanted:
                _check_hash(file)
                _load_embedding(pipe, file)
        except Exception:  # none half-loaded: the next batch starts from a clean tokenizer
            with contextlib.suppress(Exception):
                _unload_embeddings(pipe)
            raise
        self.embeddings = key


def _unload_embeddings(pipe: Any) -> None:
    pipe.unload_textual_inversion()
    if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL's second encoder
        pipe.unload_textual_inversion(tokenizer=pipe.tokenizer_2, text_encoder=pipe.text_encoder_2)


def _load_embedding(pipe: Any, file: AddOnFile) -> None:
    """One embedding: an SDXL one (``clip_l`` and ``clip_g`` vectors) into both text encoders,
    as diffusers' SDXL docs do; any other into the pipeline's text encoder."""
    if getattr(pipe, "text_encoder_2", None) is None:
        pipe.load_textual_inversion(file.path, token=file.name)
        return
    tensors = load_file(file.path)
    if "clip_l" not in tensors or "clip_g" not in tensors:
        raise GenerationFailed(
            f"embedding {file.name!r} has no clip_l and clip_g vectors: not an SDXL embedding"
        )
    pipe.load_textual_inversion(
        tensors["clip_l"], token=file.name, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    pipe.load_textual_inversion(
        tensors["clip_g"],
        token=file.name,
        text_encoder=pipe.text_encoder_2,
        tokenizer=pipe.tokenizer_2,
    )


def _file(files: dict[tuple[str, str], AddOnFile], kind: str, addon: AddOn) -> AddOnFile:
    file = files.get((kind, addon.name))
    if file is None:
        raise GenerationFailed(f"this worker was not given the file of {kind} {addon.name!r}")
    if file.sha256 != addon.sha256:
        raise GenerationFailed(f"the file of {kind} {addon.name!r} is not the one the job used")
    return file


def _check_hash(file: AddOnFile) -> None:
    if current_hash(file.path, file.kind) != file.sha256:
        raise GenerationFailed(
            f"the file of {file.kind} {file.name!r} ({Path(file.path).name}) changed or is gone"
        )
