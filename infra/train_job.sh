#!/usr/bin/env bash
# Entrypoint of the training job that infra/train.sh runs on Cloud Run (an L4 GPU), also
# runnable locally: every path is a plain folder, which in the job is a Cloud Storage bucket
# mounted at /bucket.
#
# One run trains for at most TIME_BUDGET seconds, then saves. Run it again (train.sh starts
# another job execution) and it resumes from the checkpoint in the bucket, until every arch
# has its steps; each finished arch is exported (parity-checked) to MODELS_DIR at once.
# Training runs in a local scratch folder; checkpoints and logs are copied to the bucket after
# each run, so nothing depends on how the bucket's FUSE mount handles appends or renames.
# ADD_STYLE=1 teaches the bundled multi-style network the painting instead
# (python -m training.add_style: only the new style's norm parameters learn) and writes
# NAME.fast.onnx.
set -euo pipefail

# die, log, need_value
# shellcheck source-path=SCRIPTDIR source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

STYLE_NAME="${STYLE_NAME:-}"
BUCKET_DIR="${BUCKET_DIR:-/bucket}"
STYLE_IMAGE="${STYLE_IMAGE:-}"
DATA_DIR="${DATA_DIR:-}"
MODELS_DIR="${MODELS_DIR:-}"
RUNS_DIR="${RUNS_DIR:-}"
WORK_DIR="${WORK_DIR:-${TMPDIR:-/tmp}/styleserve-train}"
ARCHS="${ARCHS:-}"  # "johnson fast" for a painting, fast for a folder (validate)
ADD_STYLE="${ADD_STYLE:-0}"
TRUNK="${TRUNK:-}"
STEPS="${STEPS:-}"  # 40000, or 400 with ADD_STYLE=1 (validate)
FAST_STEPS="${FAST_STEPS:-10000}"
TIME_BUDGET="${TIME_BUDGET:-3000}"
LOSS_NET="${LOSS_NET:-auto}"
IMAGE_SIZE="${IMAGE_SIZE:-256}"
BATCH_SIZE="${BATCH_SIZE:-4}"
DEVICE="${DEVICE:-auto}"
TRAIN_ARGS="${TRAIN_ARGS:-}"
EXPORT_ARGS="${EXPORT_ARGS:-}"
PYTHON="${PYTHON:-python3}"

usage() {
  cat <<EOF
Usage: infra/train_job.sh [options]

Trains style STYLE_NAME from a painting and exports each finished arch to MODELS_DIR as
NAME.onnx (johnson) and NAME.fast.onnx (fast, distilled from the johnson model when both are
trained). Stops after TIME_BUDGET seconds; run it again to resume. Writes RUNS_DIR/status.json
({"state": "done"|"training", ...}) after every run. Run from the repository root (or set
PYTHONPATH) with the 'train' extra and onnxruntime installed.

Options (env var in brackets, then default):
  --name NAME          [STYLE_NAME]   required; the style id the API serves
  --bucket-dir DIR     [BUCKET_DIR]   /bucket (where the job mounts the bucket)
  --style PATH         [STYLE_IMAGE]  the painting, or a folder of paintings for one multi-style
                                      network; default: the one file BUCKET_DIR/styles/NAME.*,
                                      else the folder BUCKET_DIR/styles/NAME/
  --data DIR           [DATA_DIR]     training photos; default BUCKET_DIR/photos
  --models-dir DIR     [MODELS_DIR]   where NAME.onnx goes; default BUCKET_DIR (its top level,
                                      what deploy.sh --models-bucket serves)
  --runs-dir DIR       [RUNS_DIR]     checkpoints; default BUCKET_DIR/runs/NAME
  --work-dir DIR       [WORK_DIR]     local scratch; default \$TMPDIR/styleserve-train
  --archs "A B"        [ARCHS]        "johnson fast" | johnson | fast ("johnson fast" for a
                                      painting, fast for a folder)
  --add-style          [ADD_STYLE=1]  a new style of the bundled network: NAME.fast.onnx
  --trunk PATH         [TRUNK]        with --add-style: the multi-style model or checkpoint to
                                      join; default the one in function/models
  --steps N            [STEPS]        40000 (johnson, or fast when trained alone); 400 with
                                      --add-style
  --fast-steps N       [FAST_STEPS]   10000 (fast, when distilled from johnson)
  --time-budget S      [TIME_BUDGET]  3000 seconds of training per run
  --loss-net NET       [LOSS_NET]     auto (ImageNet VGG16 through torch hub if it downloads,
                                      else efficientnet-lite0) | vgg16 | efficientnet-lite0
  --image-size PX      [IMAGE_SIZE]   256
  --batch-size N       [BATCH_SIZE]   4
  --device DEV         [DEVICE]       auto
  --train-args "..."   [TRAIN_ARGS]   more python -m training.train flags (word-split)
  --export-args "..."  [EXPORT_ARGS]  more python -m export flags (word-split)
  -h, --help           this text
EOF
}

# Append the words of string $2 (split like the shell) to the array named $1.
append_words() {
  local -n into="$1"
  [[ -n "$2" ]] || return 0
  local words
  read -r -a words <<<"$2"
  into+=("${words[@]}")
}

# Copy $1 to $2 under a temporary name first, so a reader never sees a half-written file.
publish() {
  cp "$1" "$2.partial"
  mv -f "$2.partial" "$2"
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) need_value "$@"; STYLE_NAME="$2"; shift ;;
      --bucket-dir) need_value "$@"; BUCKET_DIR="$2"; shift ;;
      --style) need_value "$@"; STYLE_IMAGE="$2"; shift ;;
      --data) need_value "$@"; DATA_DIR="$2"; shift ;;
      --models-dir) need_value "$@"; MODELS_DIR="$2"; shift ;;
      --runs-dir) need_value "$@"; RUNS_DIR="$2"; shift ;;
      --work-dir) need_value "$@"; WORK_DIR="$2"; shift ;;
      --archs) need_value "$@"; ARCHS="$2"; shift ;;
      --add-style) ADD_STYLE=1 ;;
      --trunk) need_value "$@"; TRUNK="$2"; shift ;;
      --steps) need_value "$@"; STEPS="$2"; shift ;;
      --fast-steps) need_value "$@"; FAST_STEPS="$2"; shift ;;
      --time-budget) need_value "$@"; TIME_BUDGET="$2"; shift ;;
      --loss-net) need_value "$@"; LOSS_NET="$2"; shift ;;
      --image-size) need_value "$@"; IMAGE_SIZE="$2"; shift ;;
      --batch-size) need_value "$@"; BATCH_SIZE="$2"; shift ;;
      --device) need_value "$@"; DEVICE="$2"; shift ;;
      --train-args) need_value "$@"; TRAIN_ARGS="$2"; shift ;;
      --export-args) need_value "$@"; EXPORT_ARGS="$2"; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
  done
}

validate() {
  [[ "$STYLE_NAME" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] ||
    die "--name wants a style id of lowercase letters, digits, '_' and '-' (got '$STYLE_NAME')"
  : "${DATA_DIR:=$BUCKET_DIR/photos}" "${MODELS_DIR:=$BUCKET_DIR}" "${RUNS_DIR:=$BUCKET_DIR/runs/$STYLE_NAME}"
  if [[ -z "$STYLE_IMAGE" ]]; then
    local found=("$BUCKET_DIR/styles/$STYLE_NAME".*)
    if [[ -d "$BUCKET_DIR/styles/$STYLE_NAME" && ! -e "${found[0]}" ]]; then
      found=("$BUCKET_DIR/styles/$STYLE_NAME")
    fi
    [[ ${#found[@]} -eq 1 && -e "${found[0]}" ]] ||
      die "no single painting $BUCKET_DIR/styles/$STYLE_NAME.* nor a folder $BUCKET_DIR/styles/$STYLE_NAME/ (pass --style PATH)"
    STYLE_IMAGE="${found[0]}"
  fi
  [[ -f "$STYLE_IMAGE" || -d "$STYLE_IMAGE" ]] || die "painting $STYLE_IMAGE not found"
  if [[ -d "$STYLE_IMAGE" ]]; then
    [[ "$ADD_STYLE" == 0 ]] || die "--add-style adds one painting, not the folder $STYLE_IMAGE"
    [[ "$ARCHS" != "johnson fast" ]] ||
      die "a network of several paintings trains one arch: --archs fast or johnson (there is no distillation per painting)"
    : "${ARCHS:=fast}"
  fi
  : "${ARCHS:=johnson fast}"
  [[ -d "$DATA_DIR" ]] || die "training photos folder $DATA_DIR not found"
  if [[ "$ADD_STYLE" == 1 ]]; then
    ARCHS=fast
    [[ "$STYLE_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] ||
      die "--add-style names the style inside a network: letters, digits and '_', not first a digit (got '$STYLE_NAME')"
    [[ -z "$TRUNK" || -f "$TRUNK" ]] || die "trunk $TRUNK not found"
  fi
  : "${STEPS:=$([[ "$ADD_STYLE" == 1 ]] && echo 400 || echo 40000)}"
  local n
  for n in STEPS FAST_STEPS TIME_BUDGET IMAGE_SIZE BATCH_SIZE; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive whole number, got '${!n}'"
  done
  case "$ARCHS" in
    "johnson fast" | johnson | fast) ;;
    *) die "--archs must be \"johnson fast\", johnson or fast (got '$ARCHS')" ;;
  esac
  case "$LOSS_NET" in
    auto | vgg16 | efficientnet-lite0) ;;
    *) die "--loss-net must be auto, vgg16 or efficientnet-lite0 (got '$LOSS_NET')" ;;
  esac
  mkdir -p "$RUNS_DIR" "$MODELS_DIR" "$WORK_DIR"
}

# The step a checkpoint reached, 0 without one.
checkpoint_step() {
  [[ -f "$1" ]] || { echo 0; return 0; }
  "$PYTHON" -c 'import sys; from training.checkpoint import load; print(load(sys.argv[1])["step"])' "$1"
}

# A resumed run must keep its loss network: the first run's choice is kept in RUNS_DIR.
choose_loss_net() {
  if [[ -f "$RUNS_DIR/loss_net" ]]; then
    LOSS_NET="$(cat "$RUNS_DIR/loss_net")"
  elif [[ "$LOSS_NET" == auto ]]; then
    if "$PYTHON" -c 'from training.vgg import load_vgg16_state_dict; load_vgg16_state_dict(None)' \
      >/dev/null 2>&1; then
      LOSS_NET=vgg16
    else
      log "ImageNet VGG16 not downloadable from torch hub here; using efficientnet-lite0 (shipped with the train extra)"
      LOSS_NET=efficientnet-lite0
    fi
  fi
  echo "$LOSS_NET" >"$RUNS_DIR/loss_net"
  log "loss network: $LOSS_NET"
}

write_status() {
  local state="$1" detail="$2"
  "$PYTHON" - "$RUNS_DIR/status.json" "$state" "$detail" "$STYLE_NAME" <<'PY'
import json, sys, time
path, state, detail, name = sys.argv[1:]
with open(path + ".partial", "w") as f:
    json.dump({"state": state, "detail": detail, "style": name, "time": int(time.time())}, f)
    f.write("\n")
import os
os.replace(path + ".partial", path)
PY
}

model_file() {
  if [[ "$1" == johnson ]]; then echo "$STYLE_NAME.onnx"; else echo "$STYLE_NAME.$1.onnx"; fi
}

# train_arch ARCH STEPS [TEACHER_CKPT]: trains (or resumes) within the remaining budget;
# returns 0 when ARCH has all its steps, 3 when the budget ran out first.
train_arch() {
  local arch="$1" steps="$2" teacher="${3:-}"
  local saved="$RUNS_DIR/$arch" run="$WORK_DIR/$arch"
  mkdir -p "$saved"
  rm -rf "$run"
  mkdir -p "$run"
  # Bring back the run folder (checkpoint, log, samples) from the bucket.
  cp -R "$saved/." "$run/"
  local done_steps
  done_steps="$(checkpoint_step "$run/last.pt")"
  if ((done_steps >= steps)); then
    log "$arch: $done_steps/$steps steps already done"
    return 0
  fi
  local left=$((DEADLINE - SECONDS))
  if ((left < 60)); then
    log "$arch: no time left in this run's budget"
    return 3
  fi
  local cmd=("$PYTHON" -m training.train --style "$STYLE_IMAGE" --data "$DATA_DIR" --out "$run"
    --arch "$arch" --steps "$steps" --loss-net "$LOSS_NET" --image-size "$IMAGE_SIZE"
    --batch-size "$BATCH_SIZE" --device "$DEVICE" --time-budget "$left")
  [[ "$arch" == fast ]] && cmd+=(--tv-weight 10)
  [[ -f "$run/last.pt" ]] && cmd+=(--resume "$run/last.pt")
  [[ -n "$teacher" ]] && cmd+=(--teacher "$teacher")
  append_words cmd "$TRAIN_ARGS"
  log "$arch: training from step $done_steps to $steps (at most ${left}s): ${cmd[*]}"
  # Checked here: set -e does not stop a function its caller runs under `||`.
  "${cmd[@]}" || die "$arch: training failed (exit $?); its message is above"
  # Save to the bucket; last.pt last, so a reader never sees a checkpoint without its log.
  local f
  for f in "$run"/*; do
    [[ "$(basename "$f")" == last.pt ]] || cp -R "$f" "$saved/"
  done
  publish "$run/last.pt" "$saved/last.pt"
  done_steps="$(checkpoint_step "$run/last.pt")"
  log "$arch: $done_steps/$steps steps saved to $saved"
  ((done_steps >= steps)) || return 3
}

# add_new_style: learns the new style (or resumes it) within the remaining budget and exports it;
# returns 0 when it has all its steps, 3 when the budget ran out first.
add_new_style() {
  local saved="$RUNS_DIR/add" out="$WORK_DIR/add"
  local run="$out/runs/$STYLE_NAME"  # where training.add_style keeps its run
  mkdir -p "$saved"
  rm -rf "$out"
  mkdir -p "$run"
  cp -R "$saved/." "$run/"
  local done_steps left
  done_steps="$(checkpoint_step "$run/last.pt")"
  left=$((DEADLINE - SECONDS))
  if ((done_steps < STEPS && left < 60)); then
    log "add-style: no time left in this run's budget"
    return 3
  fi
  # A finished run trains nothing more: add_style then only exports it.
  local cmd=("$PYTHON" -m training.add_style --painting "$STYLE_IMAGE" --name "$STYLE_NAME"
    --data "$DATA_DIR" --out "$out" --steps "$STEPS")
  [[ -n "$TRUNK" ]] && cmd+=(--trunk "$TRUNK")
  cmd+=(-- --image-size "$IMAGE_SIZE" --batch-size "$BATCH_SIZE" --device "$DEVICE"
    --time-budget "$((left > 60 ? left : 60))")
  append_words cmd "$TRAIN_ARGS"
  log "add-style: training $STYLE_NAME from step $done_steps to $STEPS (at most ${left}s): ${cmd[*]}"
  "${cmd[@]}" || die "add-style: training failed (exit $?); its message is above"
  local f
  for f in "$run"/*; do
    [[ "$(basename "$f")" == last.pt ]] || cp -R "$f" "$saved/"
  done
  publish "$run/last.pt" "$saved/last.pt"
  done_steps="$(checkpoint_step "$run/last.pt")"
  log "add-style: $done_steps/$STEPS steps saved to $saved"
  ((done_steps >= STEPS)) || return 3
  local file="$STYLE_NAME.fast.onnx" tiles="$STYLE_NAME.fast.tiles.onnx"
  publish "$out/$tiles" "$MODELS_DIR/$tiles"
  publish "$out/$file" "$MODELS_DIR/$file"
  log "add-style: wrote $MODELS_DIR/$file and $tiles"
}

export_arch() {
  local arch="$1" file
  file="$(model_file "$arch")"
  local cmd=("$PYTHON" -m export --checkpoint "$WORK_DIR/$arch/last.pt" --out "$WORK_DIR/$file"
    --name "$STYLE_NAME" --photos "$DATA_DIR" --force)
  append_words cmd "$EXPORT_ARGS"
  log "$arch: exporting with the parity check: ${cmd[*]}"
  "${cmd[@]}"
  # Not *.onnx until complete, so a service starting meanwhile never reads half a model. The
  # tile graph first: a model is never served without the tiles that export wrote with it.
  local tiles="${file%.onnx}.tiles.onnx"
  publish "$WORK_DIR/$tiles" "$MODELS_DIR/$tiles"
  publish "$WORK_DIR/$file" "$MODELS_DIR/$file"
  log "$arch: wrote $MODELS_DIR/$file and $tiles"
}

main() {
  parse_args "$@"
  validate
  DEADLINE=$((SECONDS + TIME_BUDGET))
  if [[ "$ADD_STYLE" == 1 ]]; then
    log "new style $STYLE_NAME of the bundled network from $STYLE_IMAGE, photos $DATA_DIR"
    local rc=0
    if [[ -f "$MODELS_DIR/$STYLE_NAME.fast.onnx" && ! "$MODELS_DIR/$STYLE_NAME.fast.onnx" -ot "$RUNS_DIR/add/last.pt" ]]; then
      log "add-style: $MODELS_DIR/$STYLE_NAME.fast.onnx is already written"
    else
      add_new_style || rc=$?
    fi
    if ((rc == 3)); then
      write_status training "add-style at step $(checkpoint_step "$RUNS_DIR/add/last.pt") of $STEPS"
      log "time budget used up; run again to resume (infra/train.sh does)"
      return 0
    fi
    ((rc == 0)) || return "$rc"
    write_status "done" "$STYLE_NAME.fast.onnx"
    log "done: $STYLE_NAME.fast.onnx in $MODELS_DIR"
    return 0
  fi
  log "style $STYLE_NAME from $STYLE_IMAGE, photos $DATA_DIR, archs: $ARCHS"
  choose_loss_net
  local arch steps teacher="" written=() rc
  for arch in $ARCHS; do
    steps="$STEPS"
    if [[ "$arch" == fast && "$ARCHS" == "johnson fast" ]]; then
      steps="$FAST_STEPS"
      teacher="$WORK_DIR/johnson/last.pt"
    fi
    rc=0
    train_arch "$arch" "$steps" "$teacher" || rc=$?
    if ((rc == 3)); then
      write_status training "$arch at step $(checkpoint_step "$WORK_DIR/$arch/last.pt") of $steps"
      log "time budget used up; run again to resume (infra/train.sh does)"
      return 0
    fi
    ((rc == 0)) || return "$rc"
    if [[ ! -f "$MODELS_DIR/$(model_file "$arch")" || "$MODELS_DIR/$(model_file "$arch")" -ot "$RUNS_DIR/$arch/last.pt" ]]; then
      export_arch "$arch"
    fi
    written+=("$(model_file "$arch")")
  done
  write_status "done" "${written[*]}"
  log "done: ${written[*]} in $MODELS_DIR"
}

main "$@"
