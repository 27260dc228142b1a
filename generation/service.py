"""The one door into the engine: every front end (Discord, Telegram, the web, the CLI) calls this.

Use cases: draw; ``act`` on a job (rerun, reroll, upscale, vary); ``inpaint`` part of a job's
image; ``zoom_out``/``pan`` (outpaint) it; cancel; reads of jobs, images
and events, every one scoped by the caller's :class:`Origin` (see :mod:`generation.visibility`);
history and the queue; model and scope administration; which chat message shows which job.

Every request goes through :class:`generation.admission.Admission`: policy checks, then the job
row is written (status ``queued``) *before* the caller is told it was accepted, then it enters
the fair queue. Rejections are raised as :class:`generation.errors.Rejected` subclasses with
readable messages; a job the caller may not see is :class:`NotFound`, like one that does not
exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from generation.actions import (
    JobAction,
    parent_image,
    upscale_spec,
    vary_spec,
    vary_strength,
)
from generation.administration import (
    Administration,
    ModelInspector,
    UpscalerInspector,
)
from generation.admission import Accepted, Admission, Caller
from generation.clock import Clock
from generation.config import GenerationConfig, LimitsConfig
from generation.errors import InvalidRequest, NotFound, PermissionDenied, Rejected, shown
from generation.events import EventBus, JobFinished
from generation.families import default_sampler
from generation.inpainting import LINEAGE, check_options, clean_mask, inpaint_spec, upload_spec
from generation.messages import MessageLog
from generation.metadata import read_infotext_file
from generation.metrics import EngineMetrics
from generation.model_sources import model_family
from generation.outpainting import Outpaint, compose, outpaint_spec, pan, zoom_out
from generation.policy import (
    AdmissionPolicy,
    ScopeSettings,
    check_nsfw,
    check_text,
    check_valid_text,
)
from generation.progress import ProgressTracker, Running
from generation.queue import JobQueue
from generation.refiner import checked_refiner
from generation.regions import region_mask
from generation.requests import DrawRequest, InpaintRequest, Origin, Visibility
from generation.sizing import aspect_of
from generation.spec import MAX_SEED, Action, GenerationSpec, Refiner
from generation.styles import Style, apply_styles, available
from generation.styles import resolve as resolve_styles
from generation.uploads import DEFAULT_MAX_BYTES, clean_upload, png_size
from generation.visibility import EVERYONE, EventWatch, Viewer
from generation.workers import WorkerStatus
from storage.images import ImageStore
from storage.records import JobRecord, ModelRecord
from storage.repository import Store

__all__ = ["Accepted", "QueueStatus", "Service"]

log = logging.getLogger(__name__)

# A client polling /sdapi/v1/progress for previews asks about once a second; A1111's own page
# every 0.5-1 s. Previews stay on this long after a poll.
PREVIEW_POLL_SECONDS = 10.0


@dataclass(frozen=True)
class QueueStatus:
    length: int
    running: int
    your_jobs: tuple[tuple[str, int, float], ...]  # (job id, position, seconds until it starts)
    # job id -> seconds until it should be done, for each of ``your_jobs``
    seconds_left: Mapping[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def refusals_logged(origin: Origin, what: str) -> Iterator[None]:
    """A refused request is said in the server's log too (who, where, why), not only to them."""
    try:
        yield
    except Rejected as refusal:
        log.info(
            "refused %s from %s user %s in %s: %s",
            what,
            origin.platform,
            origin.user_id,
            origin.scope_id,
            refusal.message,
        )
        raise


def _compose_file(path: Path, how: Outpaint, canvas: tuple[int, int]) -> tuple[bytes, bytes]:
    with Image.open(path) as picture:
        return compose(picture, how, canvas)


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


class Service(Administration):
    """The engine's use cases; model and scope administration come from :class:`Administration`."""

    def __init__(
        self,
        *,
        generation: GenerationConfig,
        limits: LimitsConfig,
        store: Store,
        images: ImageStore,
        queue: JobQueue,
        bus: EventBus,
        clock: Clock,
        inspect_model: ModelInspector | None = None,
        inspect_upscaler: UpscalerInspector | None = None,
        addon_folder: Path | None = None,
    ) -> None:
        """``addon_folder``: where LoRA and embedding files uploaded in a chat are kept."""
        policy = AdmissionPolicy(generation)
        super().__init__(
            store=store,
            policy=policy,
            inspect_model=inspect_model,
            inspect_upscaler=inspect_upscaler,
        )
        self.generation = generation
        # the config's prompt styles, for every scope (generation.styles)
        self._global_styles = {
            name: Style(name, style.prompt, style.negative_prompt)
            for name, style in generation.styles.items()
        }
        self.allow_unsafe_addons = generation.allow_unsafe_weights  # pickled LoRA/embeddings
        self.addon_folder = addon_folder
        self.limits = limits
        self.images = images
        self.queue = queue
        self.bus = bus
        self.clock = clock
        self.admission = Admission(
            policy=self._policy, limits=limits, store=store, queue=queue, bus=bus, clock=clock
        )
        self.progress = ProgressTracker(bus, on_progress=queue.note_progress)
        self.messages = MessageLog(store)
        self._worker_statuses: Callable[[], list[WorkerStatus]] = list
        self.metrics = EngineMetrics(bus, queue, lambda: self._worker_statuses())

    @property
    def accepting(self) -> bool:
        return self.admission.accepting

    @accepting.setter
    def accepting(self, value: bool) -> None:
        self.admission.accepting = value

    # ------------------------------------------------------------------ identity

    async def _identify(self, origin: Origin) -> Caller:
        """The caller's user and scope rows, created on first sight (requests make rows)."""
        platform, user_id = origin.person
        user = await self.store.get_or_create_user(platform, user_id, origin.user_name)
        scope = await self.store.get_or_create_scope(
            origin.platform, origin.scope_id, origin.scope_name
        )
        return Caller(user, scope)

    async def viewer(self, origin: Origin) -> Viewer:
        """What ``origin`` may see, resolved once (a read: it creates no rows)."""
        if origin.sees is Visibility.ALL:
            return EVERYONE
        user = await self.store.find_user(*origin.person)
        scope = await self.store.find_scope(origin.platform, origin.scope_id)
        return Viewer(origin.sees, user.id if user else None, scope.id if scope else None)

    # ------------------------------------------------------------------ making jobs

    async def draw(
        self, origin: Origin, request: DrawRequest, *, max_upload_bytes: int = DEFAULT_MAX_BYTES
    ) -> Accepted:
        """Admit a new job. ``max_upload_bytes`` is the front end's cap on ``init_image`` (and
        ``mask.mask``: an inpaint of the upload, A1111's img2img with a mask; the mask is
        checked against the upload as :meth:`inpaint` checks it against a result)."""
        with refusals_logged(origin, "draw"):
            return await self._draw(origin, request, max_upload_bytes)

    async def _draw(self, origin: Origin, request: DrawRequest, max_upload_bytes: int) -> Accepted:
        check_text(request)  # before any of it reaches the database
        caller = await self._identify(origin)
        settings = ScopeSettings.from_dict(caller.scope.settings)
        if request.styles:  # the job stores the prompts with the styles in them (as A1111)
            chosen = resolve_styles(request.styles, self._styles_of(settings))
            prompt, negative = apply_styles(request.prompt, request.negative_prompt, chosen)
            request = dataclasses.replace(request, prompt=prompt, negative_prompt=negative)
        self._check_nsfw(origin, settings, request.prompt)
        model = await self._choose_model(request.model, settings)
        if request.sampler is None:  # the model's default, if its family has it
            sampler = default_sampler(model_family(model), model.default_sampler)
            request = dataclasses.replace(request, sampler=sampler)
        init_sha = mask_png = None
        if request.mask is not None:
            check_options(request.mask)
            if request.init_image is None:
                raise InvalidRequest("A mask needs the picture it masks: attach that image too.")
        if request.init_image is not None:
            data = request.init_image
            # Decoding a large upload takes seconds: never on the event loop.
            png = await asyncio.to_thread(clean_upload, data, max_bytes=max_upload_bytes)
            if request.mask is not None:  # checked against the picture before storing either
                mask_png = await asyncio.to_thread(
                    clean_mask,
                    request.mask.mask,
                    png_size(png),
                    invert=request.mask.mask_invert,
                    max_bytes=max_upload_bytes,
                )
            init_sha, _ = await asyncio.to_thread(self.images.save, png)
            if request.width is None and request.height is None and not request.aspect:
                # No size asked for: the picture keeps the starting image's shape.
                request = dataclasses.replace(request, aspect=aspect_of(*png_size(png)))
        refiner = await self._choose_refiner(request, model, settings)
        spec = self._policy.build_spec(
            request,
            model,
            settings,
            init_sha,
            random_seed(),
            platform=origin.platform,
            refiner=refiner,
        )
        if request.mask is not None and mask_png is not None:
            mask_sha, _ = await asyncio.to_thread(self.images.save, mask_png)
            spec = upload_spec(spec, request.mask, mask_sha)
        return await self.admission.admit(origin, caller, spec, Action.DRAW, model)

    async def styles(self, origin: Origin) -> list[Style]:
        """The prompt styles the caller's scope may use: its own and the config's, by name."""
        scope = await self.store.find_scope(origin.platform, origin.scope_id)
        settings = ScopeSettings.from_dict(scope.settings if scope else None)
        return sorted(self._styles_of(settings).values(), key=lambda s: s.name.lower())

    def _styles_of(self, settings: ScopeSettings) -> dict[str, Style]:
        return available({style.name: style for style in settings.styles}, self._global_styles)

    async def act(
        self,
        origin: Origin,
        action: JobAction | str,
        job_id: str,
        *,
        index: int = 0,
        strength: str | None = None,
    ) -> Accepted:
        """A new job made from one the caller may see: rerun, reroll, upscale or vary.

        ``index`` (0-based) chooses the image for upscale and vary; ``strength`` is the
        variation's ("subtle", the default, or "strong").
        """
        with refusals_logged(origin, str(action)):
            return await self._act(origin, action, job_id, index, strength)

    async def _act(
        self,
        origin: Origin,
        action: JobAction | str,
        job_id: str,
        index: int,
        strength: str | None,
    ) -> Accepted:
        what = action if isinstance(action, JobAction) else JobAction.parse(action)
        variation = vary_strength(strength) if what is JobAction.VARY else 0.0  # refused first
        parent, caller = await self._visible_job(origin, job_id, create=True)
        assert caller is not None
        settings = ScopeSettings.from_dict(caller.scope.settings)
        self._check_nsfw(origin, settings, parent.prompt)
        spec = await self._child_spec(what, parent, index, variation)
        model = await self.store.get_model(spec.model)
        if model is None:
            raise InvalidRequest(
                f"Job {parent.id} used model {spec.model!r}, which is no longer registered."
            )
        return await self.admission.admit(
            origin,
            caller,
            spec,
            what.lineage,
            model,
            parent_id=parent.id,
            parent_index=index if what.uses_image else None,
        )

    async def _child_spec(
        self, action: JobAction, parent: JobRecord, index: int, variation: float
    ) -> GenerationSpec:
        if action is JobAction.RERUN:
            return parent.spec
        if action is JobAction.REROLL:
            return parent.spec.with_seed(random_seed())
        image = parent_image(parent, index)
        if action is JobAction.UPSCALE:
            upscaler = await self._latest_upscaler()
            spec = upscale_spec(
                parent,
                image,
                upscaler=upscaler.name if upscaler else None,
                strength=self.generation.upscale_strength,
            )
            self._policy.check_upscale(spec)
            return spec
        return vary_spec(parent, image, strength=variation, seed=random_seed())

    # convenience names for the command line and tests: each is ``act`` with its action
    async def rerun(self, origin: Origin, job_id: str) -> Accepted:
        return await self.act(origin, JobAction.RERUN, job_id)

    async def reroll(self, origin: Origin, job_id: str) -> Accepted:
        return await self.act(origin, JobAction.REROLL, job_id)

    async def upscale(self, origin: Origin, job_id: str, index: int = 0) -> Accepted:
        return await self.act(origin, JobAction.UPSCALE, job_id, index=index)

    async def vary(
        self, origin: Origin, job_id: str, index: int = 0, strength: str = "subtle"
    ) -> Accepted:
        return await self.act(origin, JobAction.VARY, job_id, index=index, strength=strength)

    async def inpaint(
        self,
        origin: Origin,
        job_id: str,
        request: InpaintRequest,
        *,
        index: int = 0,
        max_upload_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Accepted:
        """Repaint the white part of ``request.mask`` on image ``index`` (0-based) of a job the
        caller may see ("Vary (Region)"): every front end's inpaint, with a new seed. The child
        records ``Action.VARY`` and its parent image; admission, limits and permissions are
        those of every other action. Bad masks and options are refused before anything is
        stored or queued (see :mod:`generation.inpainting`)."""
        with refusals_logged(origin, "inpaint"):
            strength = check_options(request)
            for label, text in (("prompt", request.prompt), ("negative", request.negative_prompt)):
                if text is not None:
                    check_valid_text(label, text)
            parent, caller = await self._visible_job(origin, job_id, create=True)
            assert caller is not None
            prompt = parent.prompt if request.prompt is None else request.prompt.strip()
            if not prompt:
                raise InvalidRequest("The prompt is empty: describe what to paint there.")
            settings = ScopeSettings.from_dict(caller.scope.settings)
            self._check_nsfw(origin, settings, prompt)
            image = parent_image(parent, index)
            negative = request.negative_prompt
            mask = request.mask
            if request.region is not None:
                if mask:
                    raise InvalidRequest("Give a mask or a region, not both.")
                mask = region_mask(request.region, (image.width, image.height))
            png = await asyncio.to_thread(
                clean_mask,
                mask,
                (image.width, image.height),
                invert=request.mask_invert,
                max_bytes=max_upload_bytes,
            )
            model = await self._model_of(parent)
            spec = inpaint_spec(
                parent,
                image,
                request,
                prompt=self._policy.text("Prompt", prompt),
                negative_prompt=self._policy.text(
                    "Negative prompt",
                    parent.negative_prompt if negative is None else negative.strip(),
                ),
                strength=strength,
                mask_sha=(await asyncio.to_thread(self.images.save, png))[0],
                seed=random_seed(),
            )
            return await self.admission.admit(
                origin, caller, spec, LINEAGE, model, parent_id=parent.id, parent_index=index
            )

    async def zoom_out(
        self, origin: Origin, job_id: str, factor: float | str = 2.0, *, index: int = 0
    ) -> Accepted:
        """Image ``index`` of a job centred on a canvas ``factor`` times its size (1 < factor
        <= 2), the new border painted ("Zoom Out 1.5x/2x")."""
        return await self.outpaint(origin, job_id, zoom_out(factor), index=index)

    async def pan(self, origin: Origin, job_id: str, direction: str, *, index: int = 0) -> Accepted:
        """Image ``index`` of a job with half a side more canvas towards ``direction`` (left,
        right, up, down), painted ("Pan")."""
        return await self.outpaint(origin, job_id, pan(direction), index=index)

    async def outpaint(
        self, origin: Origin, job_id: str, how: Outpaint, *, index: int = 0
    ) -> Accepted:
        """Zoom out or pan (see :mod:`generation.outpainting`): an inpaint of a larger canvas,
        its size within the model's multiples and the scope's size limits."""
        with refusals_logged(origin, how.name):
            parent, caller = await self._visible_job(origin, job_id, create=True)
            assert caller is not None
            settings = ScopeSettings.from_dict(caller.scope.settings)
            self._check_nsfw(origin, settings, parent.prompt)
            image = parent_image(parent, index)
            model = await self._model_of(parent)
            wanted = how.canvas_size(image.width, image.height)
            canvas = self._policy.limit_size(*wanted, settings, origin.platform)
            path = self.images.path_for(image.sha256)
            canvas_png, mask_png = await asyncio.to_thread(_compose_file, path, how, canvas)
            canvas_sha, _ = await asyncio.to_thread(self.images.save, canvas_png)
            mask_sha, _ = await asyncio.to_thread(self.images.save, mask_png)
            spec = outpaint_spec(parent, how, canvas, canvas_sha, mask_sha, random_seed())
            return await self.admission.admit(
                origin, caller, spec, LINEAGE, model, parent_id=parent.id, parent_index=index
            )

    async def _model_of(self, parent: JobRecord) -> ModelRecord:
        model = await self.store.get_model(parent.model)
        if model is None:
            raise InvalidRequest(
                f"Job {parent.id} used model {parent.model!r}, which is no longer registered."
            )
        return model

    async def cancel(self, origin: Origin, job_id: str) -> JobRecord:
        """Cancel a queued or running job: the requester's own, or any job for an admin."""
        job, caller = await self._visible_job(origin, job_id, create=True)
        assert caller is not None
        if job.user_id != caller.user.id and not origin.is_admin:
            raise PermissionDenied(
                f"Job {job.id} belongs to someone else; only they can cancel it."
            )
        if job.is_terminal:
            raise InvalidRequest(f"Job {job.id} has already finished ({job.status}).")
        cancelled = await self.store.cancel(job.id)
        if cancelled is None:  # finished while we were looking
            raise InvalidRequest(f"Job {job.id} has already finished.")
        if self.queue.remove(job.id):
            self.bus.publish(JobFinished(cancelled))
        else:
            self.queue.request_stop(job.id)  # the worker publishes when it stops rendering
        return cancelled

    def _check_nsfw(self, origin: Origin, settings: ScopeSettings, prompt: str) -> None:
        if origin.channel_id is not None:
            check_nsfw(prompt, settings.nsfw_mode(origin.channel_id, origin.nsfw_default))

    # ------------------------------------------------------------------ reading jobs

    async def job_for(self, origin: Origin, job_id: str) -> JobRecord:
        """A job the caller may see (their own, their public scope's, or any for the owner).

        To anyone else a job of another scope or person does not exist, so ids cannot be
        probed: the refusal is the same :class:`NotFound` as for an unknown id.
        """
        job, _ = await self._visible_job(origin, job_id, create=False)
        return job

    async def _visible_job(
        self, origin: Origin, job_id: str, *, create: bool
    ) -> tuple[JobRecord, Caller | None]:
        job = await self.store.get_job(job_id)
        if job is not None:
            caller = await self._identify(origin) if create else None
            if caller is not None:
                viewer = Viewer(origin.sees, caller.user.id, caller.scope.id)
            else:
                viewer = await self.viewer(origin)
            if viewer.may_see(job):
                return job, caller
        raise NotFound(f"No job with id {shown(job_id.strip())}.")

    async def owns(self, origin: Origin, job: JobRecord) -> bool:
        """Whether ``origin`` asked for ``job`` (e.g. who may delete its message)."""
        user = await self.store.find_user(*origin.person)  # a read: no row
        return user is not None and user.id == job.user_id

    async def history(
        self,
        origin: Origin,
        *,
        limit: int = 20,
        offset: int = 0,
        query: str | None = None,
    ) -> list[JobRecord]:
        """Newest first: every job for the machine's owner, else the caller's own."""
        if query:
            check_valid_text("search text", query)
        user_id = None
        if origin.sees is not Visibility.ALL:
            # A read never creates the user (anyone may ask; only requests make rows).
            user = await self.store.find_user(*origin.person)
            if user is None:
                return []
            user_id = user.id
        limit = max(1, min(limit, 200))
        return await self.store.list_jobs(user_id=user_id, limit=limit, offset=offset, query=query)

    async def queue_status(self, origin: Origin) -> QueueStatus:
        """The queue's length, and where the caller's own waiting jobs are in it."""
        user = await self.store.find_user(*origin.person)  # a read: no row
        mine = []
        queued = []
        if user is not None:
            queued = await self.store.list_jobs(user_id=user.id, limit=50, statuses=["queued"])
        etas = self.queue.etas() if queued else {}
        left = {}
        for job in queued:
            position = self.queue.position(job.id)
            eta = etas.get(job.id)
            if position is not None and eta is not None:
                mine.append((job.id, position, eta))
                left[job.id] = eta + self.queue.estimate(job.id)
        mine.sort(key=lambda item: item[1])
        return QueueStatus(
            length=len(self.queue),
            running=self.queue.running_count,
            your_jobs=tuple(mine),
            seconds_left=left,
        )

    def place_in_queue(self, job: JobRecord) -> tuple[int, float] | None:
        """(position, seconds until it starts) of a queued job the caller holds, None when
        not queued."""
        position = self.queue.position(job.id)
        if position is None:
            return None
        return position, self.queue.eta(job.id) or 0.0

    def seconds_left(self, job_id: str) -> float | None:
        """Seconds until a job the caller holds (or sees events of) should be done: a running
        job's time left (its estimate blended with its step progress), a queued job's wait
        plus its own estimate; None once it finished. Every front end shows this number."""
        return self.queue.seconds_left(job_id)

    # ------------------------------------------------------------------ operations

    def attach_workers(self, statuses: Callable[[], list[WorkerStatus]]) -> None:
        """Where :meth:`workers` and ``/metrics`` read the workers (the engine's renderer)."""
        self._worker_statuses = statuses

    def workers(self, origin: Origin) -> list[WorkerStatus]:
        """The workers and what they do (admins only: job ids of everyone show here)."""
        self._require_admin(origin)
        return self._worker_statuses()

    def loading(self) -> bool:
        """Whether a worker is loading a model (at start-up: importing torch too). Anyone may
        ask: the page and ``/sdapi/v1/progress`` say so while jobs wait."""
        return any(status.state == "loading" for status in self._worker_statuses())

    def metrics_text(self, origin: Origin, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for Prometheus (admins only: it counts every community's jobs);
        ``accept``: the scraper's Accept header."""
        self._require_admin(origin)
        return self.metrics.render(accept)

    async def running(self, origin: Origin, *, previews: bool = False) -> list[Running]:
        """The jobs rendering now that the caller may see, oldest first, with their progress.
        ``previews``: the caller shows step previews, so the renderer makes them for a while
        (a poller asks again within ``PREVIEW_POLL_SECONDS``)."""
        if previews:
            self.bus.want_previews(PREVIEW_POLL_SECONDS)
        return self.progress.visible_to(await self.viewer(origin))

    # ------------------------------------------------------------------ events

    async def watch(
        self, origin: Origin, *, max_progress: int = 256, previews: bool = False
    ) -> EventWatch:
        """Live events of every job the caller may see, from now on (``async with`` it);
        ``previews``: the caller shows step previews (they are made only while someone does)."""
        viewer = await self.viewer(origin)

        async def refresh() -> Viewer:
            return await self.viewer(origin)

        subscription = self.bus.subscribe(None, max_progress=max_progress, previews=previews)
        return EventWatch(subscription, viewer, lookup=self.store.get_job, refresh=refresh)

    def watch_job(self, job: JobRecord, *, max_progress: int = 256) -> EventWatch:
        """Live events of one job the caller already holds (from ``draw``, ``act`` or
        ``job_for``). Synchronous, so nothing is missed between admitting and watching."""
        subscription = self.bus.subscribe(job.id, max_progress=max_progress)
        return EventWatch(subscription, EVERYONE, lookup=self.store.get_job)

    # ------------------------------------------------------------------ images

    def image_path(self, sha256: str) -> Path:
        """Where a stored image lives (of a job the caller holds)."""
        return self.images.path_for(sha256)

    async def read_images(self, job: JobRecord) -> list[bytes]:
        """The PNG files of a job the caller holds, read in a thread."""
        shas = [image.sha256 for image in job.images]
        return await asyncio.to_thread(lambda: [self.images.read(sha) for sha in shas])

    async def infotexts(self, job: JobRecord) -> list[str]:
        """The A1111 ``parameters`` text of each image ("" where a file cannot be read)."""

        def read_all() -> list[str]:
            texts = []
            for image in job.images:
                try:
                    texts.append(read_infotext_file(self.images.path_for(image.sha256)))
                except (OSError, ValueError):
                    texts.append("")
            return texts

        return await asyncio.to_thread(read_all)

    async def image_file(self, origin: Origin, sha256: str) -> Path:
        """A stored image the caller may see: one of their visible jobs made it or started
        from it. Anything else is :class:`NotFound`, like an image that does not exist."""
        path = self.images.path_for(sha256)
        missing = NotFound(f"No stored image {sha256}.")
        if origin.sees is not Visibility.ALL:
            viewer = await self.viewer(origin)
            owners = await self.store.image_owners(sha256)
            if not any(
                (viewer.user_id is not None and user == viewer.user_id)
                or (viewer.sees is Visibility.SCOPE and scope == viewer.scope_id)
                for user, scope in owners
            ):
                raise missing
        if not await asyncio.to_thread(path.is_file):
            raise missing
        return path

    # ------------------------------------------------------------------ delivery

    async def delivered(self, job: JobRecord) -> None:
        """Record that a front end that hands results out itself (the CLI, the A1111 API's
        synchronous calls) has handed ``job``'s out."""
        await self.store.mark_delivered(job.id)

    async def scope_settings_of(self, job: JobRecord) -> ScopeSettings:
        """The settings of the scope a job was asked from (e.g. its channel's NSFW policy)."""
        scope = await self.store.get_scope(job.scope_id)
        return ScopeSettings.from_dict(scope.settings if scope else None)

    # ------------------------------------------------------------------ internals

    async def _latest_upscaler(self) -> ModelRecord | None:
        """The most recently registered ESRGAN-family upscaler, if any."""
        upscalers = [m for m in await self.store.list_models() if m.kind == "upscaler"]
        return max(upscalers, key=lambda m: m.created_at, default=None)

    async def _choose_model(self, requested: str | None, settings: ScopeSettings) -> ModelRecord:
        name = requested or settings.default_model
        if name is None:
            default = await self.store.default_model()
            if default is None:
                raise InvalidRequest(
                    "No model is registered. An admin can add one: easel models add."
                )
            return default
        model = await self.store.get_model(name)
        if model is None or model.kind == "upscaler":
            available = await self._model_names()
            raise InvalidRequest(f"Unknown model {shown(name)}. Available: {available}.")
        if settings.allowed_models is not None and model.name not in settings.allowed_models:
            allowed = ", ".join(settings.allowed_models)
            raise InvalidRequest(f"Model {shown(name)} is not allowed here. Allowed: {allowed}.")
        if not model_family(model).draws:
            raise InvalidRequest(
                f"{shown(model.name)} is an SDXL refiner: it finishes SDXL pictures and cannot "
                f"draw on its own. Draw with an SDXL model and add --refiner {model.name}."
            )
        return model

    async def _choose_refiner(
        self, request: DrawRequest, model: ModelRecord, settings: ScopeSettings
    ) -> Refiner | None:
        """The request's refiner stage: a registered model this scope allows that can refine
        ``model`` (``generation.refiner``); None when none is asked for."""
        if request.refiner is None:
            if request.refiner_switch_at is not None:
                raise InvalidRequest("A refiner switch needs a refiner: add --refiner NAME.")
            return None
        name = request.refiner.strip()
        refiner = await self.store.get_model(name)
        if refiner is None or refiner.kind == "upscaler":
            models = await self.store.list_models()
            names = [m.name for m in models if m.kind != "upscaler" and model_family(m).refines]
            raise InvalidRequest(
                f"Unknown refiner {shown(name)}. Available: {', '.join(names) or 'none'}."
            )
        if settings.allowed_models is not None and refiner.name not in settings.allowed_models:
            allowed = ", ".join(settings.allowed_models)
            raise InvalidRequest(f"Refiner {shown(name)} is not allowed here. Allowed: {allowed}.")
        return checked_refiner(
            model_family(model),
            model.name,
            model_family(refiner),
            refiner.name,
            refiner.revision,
            request.refiner_switch_at,
        )
