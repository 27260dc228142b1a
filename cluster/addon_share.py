"""LoRA and embedding files for ``easel worker`` on other machines, through Redis.

A job names its add-ons by registered name and hash; their files live on the engine's machine.
The engine puts each file's bytes in Redis once, under its hash (``{prefix}:addon:{sha256}``,
kept for a day after its last use), and a worker fetches a file it does not have yet into its
own folder, checks the hash and keeps it there: a LoRA crosses the network once per worker,
not once per job.

    await share(broker, files)                        # engine, before sending the batch
    files = await received.local_files(broker, files)  # worker: the same files, its own paths

Limits: Redis holds at most 512 MiB in one value, so a larger file is refused (the job fails
saying so); the files sit in Redis's memory while they are in use.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

from cluster.broker import Broker
from generation.addon_files import file_hash, kind_word
from generation.errors import GenerationFailed
from generation.render import AddOnFile

TTL_SECONDS = 24 * 3600  # in Redis, after the last job that used it
MAX_BYTES = 512 * 1024**2 - 1024  # Redis's largest value (512 MiB), with room to spare


async def share(broker: Broker, files: tuple[AddOnFile, ...]) -> None:
    """Make sure Redis holds each of ``files`` for the workers (engine side)."""
    for file in files:
        if await broker.keep_addon(file.sha256, TTL_SECONDS):
            continue
        path = Path(file.path)
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise GenerationFailed(
                f"the {kind_word(file.kind)} {file.name!r} is {size / 1024**2:.0f} MiB: too large "
                "to send to a cluster worker through Redis (at most 512 MiB)"
            )
        data = await asyncio.to_thread(path.read_bytes)
        await broker.put_addon(file.sha256, data, TTL_SECONDS)


class ReceivedAddOns:
    """A worker's folder of add-on files received from the engine, named by hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def local_files(
        self, broker: Broker, files: tuple[AddOnFile, ...]
    ) -> tuple[AddOnFile, ...]:
        """``files`` with their paths on this machine, fetched from Redis where missing."""
        return tuple([await self._local(broker, file) for file in files])

    async def _local(self, broker: Broker, file: AddOnFile) -> AddOnFile:
        target = self.folder / f"{file.sha256}.safetensors"
        if not target.is_file():
            data = await broker.addon(file.sha256)
            if data is None:
                raise GenerationFailed(
                    f"the {kind_word(file.kind)} {file.name!r} did not reach this worker (it is no "
                    "longer in Redis): run the job again"
                )
            await asyncio.to_thread(self._store, file, data, target)
        return replace(file, path=str(target))

    @staticmethod
    def _store(file: AddOnFile, data: bytes, target: Path) -> None:
        """Write ``data`` to ``target`` only if it is the file the job names."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.stem}.{os.getpid()}.part.safetensors")
        partial.write_bytes(data)
        if file_hash(partial, file.kind) != file.sha256:
            partial.unlink()
            raise GenerationFailed(f"the {kind_word(file.kind)} {file.name!r} arrived damaged")
        partial.replace(target)
