"""Benchmark output: the stdout table and a small Pillow bar chart (no matplotlib)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

LABELS = {
    "a": "(a) plain diffusers loop",
    "b": "(b) Easel, 1 user, max_batch 1",
    "c": "(c) Easel, M users, batching",
    "d": "(d) A1111 HTTP, 1 client",
}


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def print_table(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    s = r["settings"]
    lines = [
        f"Easel benchmark, profile {r['profile']}{' (tiny)' if r['tiny'] else ''}: "
        f"{s['size']}x{s['size']}, {s['steps']} steps, {s['sampler']}, N={s['n']}, "
        f"M={s['users']}",
        f"machine: {m['cpu_cores']} CPU cores, torch {m['torch']} with {m['torch_threads']} "
        f"threads, {m.get('gpu', 'no GPU')}; device {r.get('device', '-')} {r.get('dtype', '')}",
    ]
    if "a" in r:
        lines.append(
            f"{'path':34} {'images/s':>9} {'seconds':>8}  admission p50/p99   "
            "first progress p50/p99"
        )
        for key in ("a", "b", "c", "d"):
            if key not in r:
                continue
            row = r[key]
            text = f"{LABELS[key]:34} {row['images_per_s']:9.3f} {row['seconds']:8.2f}"
            if key == "d":
                text += f"  call p50/p99 {_ms(row['call_p50_ms'])} / {_ms(row['call_p99_ms'])}"
            elif key != "a":
                text += (
                    f"  {_ms(row['admission_p50_ms'])} / {_ms(row['admission_p99_ms'])}"
                    f"   {_ms(row['first_progress_p50_ms'])} / "
                    f"{_ms(row['first_progress_p99_ms'])}"
                )
            if "mfu_unet_pct" in row:
                text += f"  MFU unet {row['mfu_unet_pct']:.1f}% all {row['mfu_pipeline_pct']:.1f}%"
            lines.append(text)
        lines.append(f"(c) batch sizes taken: {r['c']['batch_sizes']}")
        ratios = f"ratios: (b)/(a) = {r['b_over_a']:.3f}   (c)/(a) = {r['c_over_a']:.3f}"
        if "d_over_a" in r:
            ratios += f"   (d)/(a) = {r['d_over_a']:.3f}"
        lines.append(ratios + "   (median over rounds of each round's ratio)")
        if "b_over_a_rounds" in r:
            lines.append(
                "per round: (b)/(a) "
                + " ".join(f"{x:.3f}" for x in r["b_over_a_rounds"])
                + "   (d)/(a) "
                + " ".join(f"{x:.3f}" for x in r["d_over_a_rounds"])
            )
        if "flops" in r:
            f = r["flops"]
            lines.append(
                f"FLOPs: UNet forward (batch 2, CFG) {f['unet_forward_cfg'] / 1e9:.1f} GFLOP; "
                f"per image UNet {f['unet_per_image'] / 1e12:.2f} TFLOP, with text encoder + VAE "
                f"decode {f['pipeline_per_image'] / 1e12:.2f} TFLOP; "
                f"peak {f['peak_tflops']} TFLOP/s"
            )
    if "scale" in r:
        adm = r["scale"]["admission"]
        hist = r["scale"]["history"]
        lines.append(
            f"scale: admission with {adm['queued_before']} queued: p50 {_ms(adm['p50_ms'])}, "
            f"p99 {_ms(adm['p99_ms'])} ({adm['samples']} draws)"
        )
        lines.append(
            f"scale: history (Store.list_jobs, limit 20) among {hist['jobs']:,} jobs / "
            f"{hist['users']:,} users: p50 {_ms(hist['p50_ms'])}, p99 {_ms(hist['p99_ms'])} "
            f"(insert {hist['insert_seconds']}s, {hist['db_mb']} MB; plan: "
            f"{'; '.join(hist['query_plan'])})"
        )
    for name, t in r["targets"].items():
        note = f"  [{t['note']}]" if "note" in t else ""
        lines.append(
            f"target {name:18} {t['value']:10.3f}  {t['target']:>7}  "
            f"{'PASS' if t['pass'] else 'FAIL'}{note}"
        )
    print("\n".join(lines))
    return lines


def draw_plot(r: dict[str, Any], lines: list[str], path: Path) -> None:
    lines = [part for line in lines for part in textwrap.wrap(line, 165) or [""]]
    width, bar_area, line_h = 1000, 260, 16
    height = bar_area + 40 + line_h * len(lines) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    if "a" in r:
        keys = [k for k in ("a", "b", "c", "d") if k in r]
        values = [r[k]["images_per_s"] for k in keys]
        top = max(values) or 1.0
        colours = ["#4477aa", "#ee6677", "#228833", "#ccbb44"]
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            x0 = 40 + i * 240
            h = int((bar_area - 40) * value / top)
            draw.rectangle([x0, bar_area - h, x0 + 180, bar_area], fill=colours[i])
            draw.text((x0, bar_area - h - 14), f"{value:.3f} images/s", fill="black")
            draw.text((x0, bar_area + 6), LABELS[key], fill="black")
    y = bar_area + 40
    for line in lines:
        draw.text((10, y), line, fill="black")
        y += line_h
    image.save(path)
