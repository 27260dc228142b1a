"""The ``easel`` command.

Generation commands (draw, rerun, reroll, upscale, vary) run the job through exactly the path the
bots use: Service -> store -> queue -> worker -> PNG files -> store. Read-only commands open only
the store, so they work while ``easel serve`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bot import cli_addons
from bot.app import App
from bot.config import Config, load_config
from bot.describe import describe_params, describe_queue, job_to_dict
from bot.grammar import HIRES_DEFAULT, merge_fields, parse_draw
from bot.logsetup import setup_logging
from generation.actions import JobAction
from generation.errors import ConfigError, EaselError, Rejected
from generation.events import JobFinished, JobProgress
from generation.model_sources import model_capabilities
from generation.outpainting import PAN_DIRECTIONS
from generation.regions import USAGE as REGION_USAGE
from generation.render import Backend
from generation.requests import DrawRequest, HiresRequest, InpaintRequest, Origin, Visibility
from generation.service import Accepted, Service
from generation.sizing import parse_size
from generation.uploads import DEFAULT_MAX_BYTES
from storage.records import JobRecord

log = logging.getLogger("easel")

EXIT_OK, EXIT_JOB_FAILED, EXIT_REFUSED = 0, 1, 2


def cli_origin() -> Origin:
    """The machine's owner: an admin who sees every job."""
    user = getpass.getuser()
    return Origin(
        platform="cli",
        scope_id="local",
        user_id=user,
        user_name=user,
        is_admin=True,
        sees=Visibility.ALL,
    )


# ---------------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="easel", description="Self-hosted AI art: one diffusers worker, many front ends."
    )
    parser.add_argument("--config", help="TOML config file (default: $EASEL_CONFIG or built-in)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def output_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, help="copy the images into this folder")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    draw = sub.add_parser("draw", help="render a prompt")
    draw.add_argument(
        "prompt", help='what to draw; the /draw grammar works too: "a fox --no blurry --seed 5"'
    )
    draw.add_argument("--negative", "--no", default="", help="negative prompt")
    draw.add_argument("--seed", type=int)
    draw.add_argument("--steps", type=int)
    draw.add_argument("--cfg", type=float)
    draw.add_argument("--size", help="WIDTHxHEIGHT, e.g. 512x768")
    draw.add_argument("--ar", help="aspect ratio, e.g. 3:2 (when --size is not given)")
    draw.add_argument("--sampler", help='e.g. "DPM++ 2M Karras", "Euler a"')
    draw.add_argument("--model", help="a registered model name (default: the default model)")
    draw.add_argument("--count", type=int, help="number of images (seeds s, s+1, ...)")
    draw.add_argument("--init-image", type=Path, help="image-to-image from this file")
    draw.add_argument("--strength", type=float, help="image-to-image strength, 0-1")
    draw.add_argument(
        "--hires",
        type=float,
        nargs="?",
        const=HIRES_DEFAULT,
        metavar="SCALE",
        help="hires fix: render, upscale by SCALE (1-4, alone: 2), render again",
    )
    draw.add_argument("--refiner", help="SDXL: a registered refiner finishes the picture")
    draw.add_argument(
        "--switch-at",
        type=float,
        metavar="FRACTION",
        help="with --refiner: the share of the steps before it takes over (0-1, default 0.8)",
    )
    output_options(draw)

    for name, text in [
        ("rerun", "render a job again with the same seeds"),
        ("reroll", "same parameters, new seed"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        output_options(p)
    for name, text in [
        ("upscale", "upscale one image of a job (2x)"),
        ("vary", "a variation of one image of a job"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        p.add_argument("--index", type=int, default=1, help="which image, 1-based (default 1)")
        if name == "vary":
            p.add_argument("--strength", choices=["subtle", "strong"], default="subtle")
        output_options(p)

    inpaint = sub.add_parser(
        "inpaint", help="repaint the white part of a mask on one image of a job (Vary region)"
    )
    inpaint.add_argument("id")
    where = inpaint.add_mutually_exclusive_group(required=True)
    where.add_argument("--mask", type=Path, help="black-and-white image file (white = repaint)")
    where.add_argument("--region", help=f"instead of --mask: {REGION_USAGE}")
    inpaint.add_argument("--index", type=int, default=1, help="which image, 1-based (default 1)")
    inpaint.add_argument("--prompt", help="what to paint there (default: the job's prompt)")
    inpaint.add_argument("--negative", help="negative prompt (default: the job's)")
    inpaint.add_argument("--strength", type=float, help="how much may change, 0-1 (0.75)")
    inpaint.add_argument("--mask-blur", type=int, default=4, help="mask edge blur in pixels")
    inpaint.add_argument(
        "--fill", choices=list(INPAINT_FILLS), default="original", help="the masked area starts as"
    )
    inpaint.add_argument(
        "--only-masked", action="store_true", help="render the masked area alone, larger"
    )
    inpaint.add_argument("--padding", type=int, default=32, help="--only-masked margin, px")
    inpaint.add_argument("--invert", action="store_true", help="repaint the black part instead")
    output_options(inpaint)

    zoom = sub.add_parser(
        "zoom-out", help="one image of a job on a larger canvas, the new border painted"
    )
    zoom.add_argument("id")
    zoom.add_argument("factor", nargs="?", default="2", help="above 1, at most 2 (default 2)")
    zoom.add_argument("--index", type=int, default=1, help="which image, 1-based (default 1)")
    output_options(zoom)
    pan = sub.add_parser("pan", help="extend one image of a job by half a side, painted")
    pan.add_argument("id")
    pan.add_argument("direction", choices=list(PAN_DIRECTIONS))
    pan.add_argument("--index", type=int, default=1, help="which image, 1-based (default 1)")
    output_options(pan)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("id")

    history = sub.add_parser("history", help="recent jobs, newest first")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--search", help="only prompts containing this text")
    history.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="every stored parameter of a job")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")

    models = sub.add_parser("models", help="the model registry")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    mlist = msub.add_parser("list", help="registered models")
    mlist.add_argument("--json", action="store_true")
    add = msub.add_parser("add", help="register a model")
    add.add_argument("name")
    add.add_argument(
        "source",
        help="Hub repo id, local diffusers folder, .safetensors checkpoint, or builtin:demo",
    )
    add.add_argument("--upscaler", action="store_true", help="SOURCE is an ESRGAN-family file")
    cli_addons.add_arguments(add)  # --lora / --embedding
    add.add_argument(
        "--config",
        dest="model_config",
        help="single-file checkpoints: local folder or cached repo id with configs",
    )
    add.add_argument("--default-steps", type=int)
    add.add_argument("--default-size")
    add.add_argument("--default-cfg", type=float)
    add.add_argument("--default-sampler")
    add.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        help="its precision on a GPU (default: generation.dtype; bfloat16 suits SD3 and Flux)",
    )
    remove = msub.add_parser("remove", help="unregister a model")
    remove.add_argument("name")
    default = msub.add_parser("default", help="make a model the default")
    default.add_argument("name")

    demo = sub.add_parser("demo-model", help="write the built-in demo model as a diffusers folder")
    demo.add_argument("dir", type=Path)

    sub.add_parser("serve", help="run the engine and the configured front ends")

    worker = sub.add_parser(
        "worker", help="render for the engine through Redis ([cluster] broker_url), on this GPU"
    )
    worker.add_argument(
        "--name", help="this worker's name (default: cluster.worker_name, else the host name)"
    )
    worker.add_argument(
        "--stand-in",
        type=float,
        metavar="SECONDS",
        help="benchmarks and tests: no GPU, every image takes SECONDS and is a flat colour",
    )
    workers = sub.add_parser("workers", help="the workers the cluster's broker knows")
    workers.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="the database")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    copy = dbsub.add_parser(
        "copy", help="copy this Easel's whole history into another (empty) database"
    )
    copy.add_argument(
        "--to", required=True, metavar="URL", help="e.g. postgresql+asyncpg://easel@localhost/easel"
    )
    return parser


# ---------------------------------------------------------------------- output helpers


def emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def copy_images(app: App, job: JobRecord, out: Path | None) -> list[str]:
    paths = []
    for image in job.images:
        source = app.service.image_path(image.sha256)
        if out is None:
            paths.append(str(source))
            continue
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{job.id}-{image.index + 1}-{image.seed}.png"
        shutil.copyfile(source, target)
        paths.append(str(target))
    return paths


def print_job(job: JobRecord, paths: Sequence[str]) -> None:
    print(f"job {job.id}: {job.status} ({describe_params(job)})")
    print(f"  prompt: {job.prompt}")
    if job.negative_prompt:
        print(f"  negative: {job.negative_prompt}")
    if job.parent_id:
        print(f"  {job.action} of {job.parent_id} image {(job.parent_index or 0) + 1}")
    if job.error:
        print(f"  error: {job.error}")
    for image, path in zip(job.images, paths, strict=False):
        print(f"  image {image.index + 1}: seed {image.seed}  {path}")
    if not job.images:
        print(f"  seeds: {', '.join(str(seed) for seed in job.seeds)}")


# ---------------------------------------------------------------------- generation commands

PROGRESS_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {postfix}]"


async def run_to_completion(
    app: App, submit: Callable[[], Awaitable[Accepted]], quiet: bool
) -> JobRecord:
    """Submit, show queue position and a progress bar, and wait for the job to finish."""
    events = await app.service.watch(cli_origin())  # before submitting: nothing is missed
    bar: tqdm[Any] | None = None
    try:
        accepted = await submit()
        job_id = accepted.job.id
        if not quiet:
            where = describe_queue(accepted.position, accepted.eta_seconds, accepted.seconds_left)
            print(f"job {job_id} queued: {where}", file=sys.stderr)
        while True:
            event = await events.get()
            if isinstance(event, JobProgress) and event.job_id == job_id:
                if bar is None:
                    bar = tqdm(
                        total=event.total,
                        unit="step",
                        disable=quiet or None,
                        desc=f"job {job_id}",
                        file=sys.stderr,
                        # the engine's time left (as every front end shows it), not tqdm's own
                        bar_format=PROGRESS_FORMAT,
                    )
                bar.total = event.total
                bar.n = event.step
                left = app.service.seconds_left(job_id)
                bar.set_postfix_str("" if left is None else f"{left:.1f} s left", refresh=False)
                bar.refresh()
            elif isinstance(event, JobFinished) and event.job.id == job_id:
                return event.job
    finally:
        if bar is not None:
            bar.close()
        events.close()


async def generate(config: Config, args: argparse.Namespace) -> int:
    origin = cli_origin()
    app = App.from_config(config)
    await app.start()
    try:
        submit = submitter(app.service, origin, args)
        job = await run_to_completion(app, submit, quiet=args.json)
        paths = copy_images(app, job, args.out)
        await app.service.delivered(job)
        if args.json:
            data = job_to_dict(job, lambda sha: str(app.service.image_path(sha)))
            data["images"] = paths
            emit(data)
        else:
            print_job(job, paths)
        return EXIT_OK if job.status == "succeeded" else EXIT_JOB_FAILED
    finally:
        await app.stop()


def submitter(
    service: Service, origin: Origin, args: argparse.Namespace
) -> Callable[[], Awaitable[Accepted]]:
    """The service call that a generation command makes (run once the progress listener is up)."""
    if args.command == "draw":
        request = draw_request(args)
        return lambda: service.draw(origin, request, max_upload_bytes=MAX_UPLOAD_BYTES)
    if args.command == "inpaint":
        inpaint = inpaint_request(args)
        return lambda: service.inpaint(
            origin, args.id, inpaint, index=args.index - 1, max_upload_bytes=MAX_UPLOAD_BYTES
        )
    if args.command == "zoom-out":
        return lambda: service.zoom_out(origin, args.id, args.factor, index=args.index - 1)
    if args.command == "pan":
        return lambda: service.pan(origin, args.id, args.direction, index=args.index - 1)
    action = JobAction(args.command)
    index = getattr(args, "index", 1) - 1
    strength = getattr(args, "strength", None)
    return lambda: service.act(origin, action, args.id, index=index, strength=strength)


# The CLI reads a file its owner chose: any image up to this size.
MAX_UPLOAD_BYTES = max(DEFAULT_MAX_BYTES, 200 * 1024 * 1024)


# A1111's "Masked content" choices (``inpainting_fill``), as the CLI spells them.
INPAINT_FILLS = {"fill": 0, "original": 1, "latent-noise": 2, "latent-nothing": 3}


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise Rejected(f"Cannot read {path}: {error.strerror}") from None


def inpaint_request(args: argparse.Namespace) -> InpaintRequest:
    return InpaintRequest(
        mask=b"" if args.mask is None else read_file(args.mask),
        region=args.region,
        prompt=args.prompt,
        negative_prompt=args.negative,
        strength=args.strength,
        mask_blur=args.mask_blur,
        inpainting_fill=INPAINT_FILLS[args.fill],
        inpaint_full_res=args.only_masked,
        inpaint_full_res_padding=args.padding,
        mask_invert=args.invert,
    )


def draw_request(args: argparse.Namespace) -> DrawRequest:
    """The prompt in the /draw grammar, the flags as fields (the prompt's options win, as on
    every front end: :func:`bot.grammar.merge_fields`)."""
    width = height = None
    if args.size:
        width, height = parse_size(args.size)
    init_image = None if args.init_image is None else read_file(args.init_image)
    fields = DrawRequest(
        prompt="",
        negative_prompt=args.negative,
        seed=None if args.seed == -1 else args.seed,
        steps=args.steps,
        cfg=args.cfg,
        width=width,
        height=height,
        aspect=args.ar,
        sampler=args.sampler,
        model=args.model,
        count=args.count,
        strength=args.strength,
        init_image=init_image,
        hires=None if args.hires is None else HiresRequest(scale=args.hires),
        refiner=args.refiner,
        refiner_switch_at=args.switch_at,
    )
    return merge_fields(parse_draw(args.prompt), fields)


# ---------------------------------------------------------------------- store-only commands


async def with_store(config: Config, action: Callable[[App], Awaitable[int]]) -> int:
    app = App.from_config(config)
    await app.start(worker=False)
    try:
        return await action(app)
    finally:
        await app.stop()


async def cmd_history(app: App, args: argparse.Namespace) -> int:
    jobs = await app.service.history(cli_origin(), limit=args.limit, query=args.search)
    if args.json:
        emit([job_to_dict(job, lambda sha: str(app.service.image_path(sha))) for job in jobs])
        return EXIT_OK
    if not jobs:
        print('no jobs yet: try  easel draw "a castle at dusk"')
    for job in jobs:
        when = job.created_at.strftime("%Y-%m-%d %H:%M")
        seeds = ",".join(str(s) for s in job.seeds)
        prompt = job.prompt if len(job.prompt) <= 50 else job.prompt[:49] + "…"
        print(f"{job.id}  {when}  {job.status:<9}  {job.action:<7}  seed {seeds:<12}  {prompt}")
    return EXIT_OK


async def cmd_show(app: App, args: argparse.Namespace) -> int:
    job = await app.service.job_for(cli_origin(), args.id)
    path = app.service.image_path
    if args.json:
        emit(job_to_dict(job, lambda sha: str(path(sha))))
    else:
        print_job(job, [str(path(image.sha256)) for image in job.images])
    return EXIT_OK


async def cmd_cancel(app: App, args: argparse.Namespace) -> int:
    job = await app.service.cancel(cli_origin(), args.id)
    print(f"job {job.id} cancelled")
    return EXIT_OK


async def cmd_models(app: App, args: argparse.Namespace) -> int:
    origin = cli_origin()
    service = app.service
    if args.models_command == "list":
        models = await service.list_models()
        if args.json:  # models, then LoRA and embeddings (kind "lora" / "embedding")
            emit([model.__dict__ for model in models] + await cli_addons.listed(service))
            return EXIT_OK
        for m in models:
            mark = "*" if m.is_default else " "
            defaults = (
                f"{m.default_width}x{m.default_height}, {m.default_steps} steps, "
                f"{m.default_sampler}, cfg {m.default_cfg:g}" + (f", {m.dtype}" if m.dtype else "")
            )
            about = model_capabilities(m)  # a family, once its files are at hand
            known = about.get("family") not in (None, "other")
            shown_kind = f"{m.kind}, {about['family_label']}" if known else m.kind
            print(f"{mark} {m.name:<16} {shown_kind:<11} {m.source}  ({defaults})")
        await cli_addons.print_list(service)
        return EXIT_OK
    if args.models_command == "add" and (kind := cli_addons.addon_kind(args)):
        await cli_addons.add(service, origin, args, kind)
    elif args.models_command == "add":
        model_defaults: dict[str, Any] = {
            "steps": args.default_steps,
            "cfg": args.default_cfg,
            "sampler": args.default_sampler,
        }
        if args.default_size:
            model_defaults["width"], model_defaults["height"] = parse_size(args.default_size)
        model = await service.add_model(
            origin,
            args.name,
            args.source,
            upscaler=args.upscaler,
            config_source=args.model_config,
            defaults=model_defaults,
            dtype=args.dtype,
        )
        print(f"registered {model.name} ({model.kind}, revision {model.revision or 'unknown'})")
        if model_capabilities(model).get("draws") is False:
            print(f"  an SDXL refiner: add --refiner {model.name} to draws on an SDXL model")
    elif args.models_command == "remove":
        if not await cli_addons.remove(service, origin, args.name):
            await service.remove_model(origin, args.name)
        print(f"removed {args.name}")
    else:
        model = await service.set_default_model(origin, args.name)
        print(f"{model.name} is now the default model")
    return EXIT_OK


def cmd_demo_model(args: argparse.Namespace) -> int:
    from generation.backend.demo_model import save_demo_model

    folder = save_demo_model(args.dir)
    print(
        f"wrote the demo model to {folder} (load it with StableDiffusionPipeline.from_pretrained)"
    )
    return EXIT_OK


async def serve(config: Config) -> int:
    """The engine and every configured front end until Ctrl-C or SIGTERM."""
    app = App.from_config(config)
    await app.start(front_ends=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info(
            "stopping: the running job gets %.0f s to finish",
            config.generation.shutdown_grace_seconds,
        )
    finally:
        await app.stop()
    log.info("stopped cleanly")
    return EXIT_OK


# ---------------------------------------------------------------------- the cluster


async def run_worker(config: Config, args: argparse.Namespace) -> int:
    """``easel worker``: render batches from the broker until Ctrl-C or SIGTERM."""
    from cluster.broker import Broker
    from cluster.remote import RemoteWorker

    url = config.cluster.broker()
    if url is None:
        raise ConfigError(
            "easel worker needs the broker: set cluster.broker_url in the config, or "
            f"${config.cluster.broker_url_env}"
        )
    name = args.name or config.cluster.worker_name or socket.gethostname()
    if args.stand_in is not None:
        from cluster.standin import StandInBackend

        backend: Backend = StandInBackend(args.stand_in)
    else:
        from bot.app import diffusers_backend
        from generation.lazy_backend import LazyBackend

        # Built on the render thread at the first batch: the worker announces itself at once.
        backend = LazyBackend(lambda: diffusers_backend(config))
    broker = Broker(url, config.cluster.prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    worker = RemoteWorker(
        name=name,
        broker=broker,
        backend=backend,
        config=config.cluster,
        addon_folder=config.data_dir / "received-addons",
        grace_seconds=config.generation.shutdown_grace_seconds,
    )
    try:
        await worker.run(stop)
    finally:
        await broker.close()
    log.info("worker %s stopped", name)
    return EXIT_OK


async def list_workers(config: Config, args: argparse.Namespace) -> int:
    from cluster.broker import Broker

    url = config.cluster.broker()
    if url is None:
        print("No [cluster] broker is configured: `easel serve` renders on this machine.")
        return EXIT_OK
    broker = Broker(url, config.cluster.prefix)
    try:
        workers = await broker.workers()
    finally:
        await broker.close()
    if args.json:
        emit({name: info.__dict__ if info else None for name, info in workers.items()})
        return EXIT_OK
    if not workers:
        print("No worker has announced itself yet: start one with `easel worker`.")
    for name, info in workers.items():
        if info is None:
            print(f"{name:<20} down (silent past cluster.heartbeat_timeout_seconds)")
            continue
        loaded = ", ".join(info.loaded) or "-"
        doing = f" {', '.join(info.current)}" if info.current else ""
        device = info.device or "-"  # "-": not chosen yet (it loads at the first batch)
        print(
            f"{name:<20} {info.state:<9} {device:<8} {info.jobs_per_minute:5.1f} jobs/min"
            f"  loaded: {loaded}{doing}"
        )
    return EXIT_OK


async def copy_db(config: Config, args: argparse.Namespace) -> int:
    from bot.app import copy_store

    counts, source, target = await copy_store(config, args.to)
    total = ", ".join(f"{count} {table}" for table, count in counts.items())
    print(f"copied {total} from {source} to {target}")
    print("set storage.database_url (or $EASEL_DATABASE_URL) to it to use it")
    return EXIT_OK


# ---------------------------------------------------------------------- entry point


GENERATING = ("draw", "rerun", "reroll", "upscale", "vary", "inpaint", "zoom-out", "pan")


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        level = "DEBUG" if args.verbose else config.log_level
        setup_logging(level, config.secret_env_vars)
        if args.command in GENERATING:
            return asyncio.run(generate(config, args))
        if args.command == "serve":
            return asyncio.run(serve(config))
        if args.command == "demo-model":
            return cmd_demo_model(args)
        if args.command == "worker":
            return asyncio.run(run_worker(config, args))
        if args.command == "workers":
            return asyncio.run(list_workers(config, args))
        if args.command == "db":
            return asyncio.run(copy_db(config, args))
        handlers: dict[str, Callable[[App, argparse.Namespace], Awaitable[int]]] = {
            "history": cmd_history,
            "show": cmd_show,
            "cancel": cmd_cancel,
            "models": cmd_models,
        }
        handler = handlers[args.command]
        return asyncio.run(with_store(config, lambda app: handler(app, args)))
    except EaselError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run())
