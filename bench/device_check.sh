#!/usr/bin/env bash
# Every GPU measurement in one call (a GPU is lent rarely and briefly), or its CPU rehearsal:
#
#   bench/device_check.sh           # on the GPU machine: about 5 minutes on an H100/H200
#   bench/device_check.sh --tiny    # the same steps with toy sizes, on any machine (CPU too)
#
# Steps: the Python environment (this checkout's .venv, else a venv over the machine's own
# torch with the wheels carried in .whl/: the GPU machine has no internet), then
#   1. bench/engine_check.py   seed parity (batch vs single, rerun) and seconds per job
#   2. bench/benchmark.py      (a) plain diffusers, (b) Easel, (c) 8 users batched; ratios, MFU
#   3. bench/bench_start.py    how soon `easel serve` answers and has its model ready
#   4. bench/bench_repaint.py  inpaint, zoom out and hires fix against plain diffusers' inpaint
#   5. bench/bench_families.py SDXL, SD3, Flux.1 and the SDXL refiner stage (tiny built-in
#                              models) against plain diffusers: time ratio and pixel parity
#   6. bench/bench_prompt_encoding.py  A1111 prompt weighting and 200-token prompts on the GPU
# Everything goes to $OUT (the device tool's folder) or bench/results: one JSON + PNG report
# from step 2 and a log of the whole run (device_check.log).
set -euo pipefail
cd "$(dirname "$0")/.."
tiny=""
[ "${1:-}" = "--tiny" ] && tiny="--tiny"
out="${OUT:-bench/results}"
mkdir -p "$out"
log="$out/device_check.log"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1

py=.venv/bin/python
if ! "$py" -c "import diffusers, sqlalchemy, aiohttp, torch" 2>/dev/null; then
  echo "== environment: a venv over this machine's torch" | tee -a "$log"
  python3 -m venv --system-site-packages /tmp/easel-venv
  py=/tmp/easel-venv/bin/python
  if [ -d .whl ]; then
    "$py" -m pip install -q --no-index --find-links .whl --no-deps -e . 2>&1 | tail -2
    "$py" -m pip install -q --no-index --find-links .whl .whl/*.whl 2>&1 | tail -2 || true
  else
    "$py" -m pip install -q -e . 2>&1 | tail -2
  fi
fi
"$py" - <<'PY' 2>&1 | tee -a "$log"
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, CUDA device: {gpu}")
PY

run() {  # a step's output to the screen and the log; a failing step does not stop the others
  echo "== $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log" || echo "!! step failed: $*" | tee -a "$log"
}
if [ -n "$tiny" ]; then
  run "$py" bench/engine_check.py --size 64 --steps 2 --runs 2
  run "$py" bench/benchmark.py --profile gpu --tiny --repeat 1 --no-scale --out "$out"
  run "$py" bench/bench_start.py --runs 1
  run "$py" bench/bench_repaint.py --runs 2
  run "$py" bench/bench_families.py --runs 2
  run "$py" bench/bench_prompt_encoding.py --runs 2
else
  run "$py" bench/engine_check.py --size 512 --steps 20 --runs 3
  run "$py" bench/benchmark.py --profile gpu --repeat 2 --no-scale --out "$out"
  run "$py" bench/bench_start.py --runs 2
  run "$py" bench/bench_repaint.py --size 512 --steps 20 --runs 3
  run "$py" bench/bench_families.py --device cuda --size 512 --steps 20 --runs 3
  run "$py" bench/bench_prompt_encoding.py --device cuda --runs 5
fi
echo "== done: $(ls "$out" | tr '\n' ' ')" | tee -a "$log"
