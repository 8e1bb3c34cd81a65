#!/usr/bin/env bash
# Train a new style on a cloud GPU with one command: uploads the painting (and training photos)
# to a Cloud Storage bucket, builds infra/Dockerfile.train with Cloud Build (torch for CUDA 12),
# deploys it as a Cloud Run job with one NVIDIA L4 and runs it until the style is trained.
# The job (infra/train_job.sh) keeps its checkpoints in the bucket, so an execution that hits
# the GPU task limit (1 hour) resumes in the next one, and writes NAME.onnx / NAME.fast.onnx
# (parity-checked exports) to the bucket's top level, which deploy.sh --models-bucket serves.
# With several paintings (--style repeated, or a folder) it trains one multi-style network of
# them (conditional instance norm: styles can be mixed), NAME.fast.onnx. With --add-style it
# teaches the bundled multi-style network the painting instead (only the new style's norm
# parameters learn: minutes, not hours) and writes NAME.fast.onnx.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=_common.sh
source "$SCRIPT_DIR/_common.sh"

# iam: the job and build service accounts are created with --quiet, under which gcloud will not
# offer to enable it.
readonly REQUIRED_APIS="run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com iam.googleapis.com"

# Defaults; every one can be set by flag or by the env var of the same name.
STYLE_FILE="${STYLE_FILE:-}"
STYLES=()  # --style, repeatable: painting files, or a folder of them
[[ -z "$STYLE_FILE" ]] || STYLES=("$STYLE_FILE")
STYLE_NAME="${STYLE_NAME:-}"
BUCKET="${BUCKET:-}"
PHOTOS="${PHOTOS:-}"
PROJECT="${PROJECT:-}"
REGION="${REGION:-$DEFAULT_REGION}"
JOB="${JOB:-styleserve-train}"
ARTIFACT_REPO="${ARTIFACT_REPO:-styleserve}"
TRAIN_SERVICE_ACCOUNT="${TRAIN_SERVICE_ACCOUNT:-}"
BUILD_SERVICE_ACCOUNT="${BUILD_SERVICE_ACCOUNT:-}"
ARCHS="${ARCHS:-}"  # "johnson fast" for one painting, fast for several (validate)
ADD_STYLE="${ADD_STYLE:-0}"
STEPS="${STEPS:-}"  # 40000, or 400 with --add-style (validate)
FAST_STEPS="${FAST_STEPS:-10000}"
LOSS_NET="${LOSS_NET:-auto}"
IMAGE_SIZE="${IMAGE_SIZE:-256}"
BATCH_SIZE="${BATCH_SIZE:-4}"
TRAIN_ARGS="${TRAIN_ARGS:-}"
TASK_TIMEOUT="${TASK_TIMEOUT:-3600}"
TIME_BUDGET="${TIME_BUDGET:-}"
MAX_EXECUTIONS="${MAX_EXECUTIONS:-8}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}"
TORCH_SPEC="${TORCH_SPEC:-torch}"
TRAIN_IMAGE="${TRAIN_IMAGE:-}"
IMAGE_TAG="${IMAGE_TAG:-$(date -u +%Y%m%d-%H%M%S)}"
SERVICE="${SERVICE:-styleserve}"
ENABLE_APIS="${ENABLE_APIS:-0}"
DRY_RUN="${DRY_RUN:-0}"

usage() {
  cat <<EOF
Usage: infra/train.sh --style PAINTING --bucket BUCKET [--photos DIR] [options]
       infra/train.sh --style A.jpg --style B.jpg ... --name NAME --bucket BUCKET [options]
       infra/train.sh --style FOLDER --bucket BUCKET [options]

Trains a style from PAINTING on a Cloud Run job with one NVIDIA L4 GPU and publishes it to
gs://BUCKET/NAME.onnx (johnson) and gs://BUCKET/NAME.fast.onnx (fast, distilled from it):
  1. preflight: gcloud, project, APIs, the bucket (created if missing), the photos
  2. uploads PAINTING to gs://BUCKET/styles/ and --photos DIR to gs://BUCKET/photos/
  3. builds infra/Dockerfile.train (torch from a CUDA 12 index) with Cloud Build
  4. deploys the Cloud Run job JOB (L4, bucket mounted at /bucket) and executes it, again and
     again while the training resumes from gs://BUCKET/runs/NAME/ (each execution trains
     TIME_BUDGET seconds, within the GPU task limit of 1 hour), until the models are written
Then serve them with infra/deploy.sh --models-bucket BUCKET (printed at the end).
Several paintings (--style repeated, or a folder of them) train one network that paints
them all (conditional instance norm; the API mixes its styles), gs://BUCKET/NAME.fast.onnx
(--archs fast, the default there, or johnson; no distillation), its paintings synced to
gs://BUCKET/styles/NAME/.
With --add-style the job instead teaches the bundled multi-style network (function/models, in
the image) the painting as a new style, learning only its norm parameters for STEPS (400)
steps, and writes gs://BUCKET/NAME.fast.onnx; served beside the bundled styles.

Options (env var in brackets, then default):
  --style FILE|DIR      [STYLE_FILE]  the painting on your disk (jpg/png/webp); required;
                                      repeat it, or give a folder, for a multi-style network
  --name NAME           [STYLE_NAME]  style id (the network's, for several paintings); default
                                      the painting's (or the folder's) name, lowercased
  --bucket NAME         [BUCKET]      Cloud Storage bucket for paintings, photos, checkpoints and
                                      models; required; created in REGION if missing
  --photos DIR          [PHOTOS]      training photos on your disk (e.g. COCO train2014), synced to
                                      gs://BUCKET/photos; optional once the bucket has them
  --project ID          [PROJECT]     GOOGLE_CLOUD_PROJECT, else 'gcloud config get-value project'
  --region REGION       [REGION]      $DEFAULT_REGION  (L4: $L4_REGIONS; by invitation: $L4_INVITATION_REGIONS)
  --job NAME            [JOB]         styleserve-train
  --repo NAME           [ARTIFACT_REPO] styleserve  (Artifact Registry Docker repo)
  --service-account EMAIL [TRAIN_SERVICE_ACCOUNT] the job's identity; default
                                      JOB@PROJECT.iam.gserviceaccount.com, created if missing,
                                      with no project roles, only objectUser on the bucket
  --build-service-account EMAIL [BUILD_SERVICE_ACCOUNT] Cloud Build's identity; default
                                      REPO-build@PROJECT.iam.gserviceaccount.com, created if
                                      missing, with only a build's roles (infra/README.md)
  --archs "A B"         [ARCHS]       "johnson fast" | johnson | fast  ("johnson fast" for
                                      one painting, fast for several)
  --add-style           [ADD_STYLE=1] a new style of the bundled network (fast), not a network
                                      of its own; NAME must be letters, digits and '_'
  --steps N             [STEPS]       40000 (400 with --add-style)
  --fast-steps N        [FAST_STEPS]  10000 (the distilled fast model)
  --loss-net NET        [LOSS_NET]    auto (ImageNet VGG16 via torch hub; else efficientnet-lite0)
                                      | vgg16 | efficientnet-lite0
  --image-size PX       [IMAGE_SIZE]  256
  --batch-size N        [BATCH_SIZE]  4
  --train-args "..."    [TRAIN_ARGS]  more python -m training.train flags
  --task-timeout S      [TASK_TIMEOUT] 3600 (GPU tasks are limited to 1 hour)
  --time-budget S       [TIME_BUDGET] training seconds per execution; default TASK_TIMEOUT - 600
  --max-executions N    [MAX_EXECUTIONS] 8  job executions at most before stopping
  --torch-index URL     [TORCH_INDEX] https://download.pytorch.org/whl/cu126
  --torch-spec SPEC     [TORCH_SPEC]  torch  (e.g. torch==2.7.1)
  --image REF           [TRAIN_IMAGE] use this training image, skip the build
  --image-tag TAG       [IMAGE_TAG]   UTC timestamp
  --service NAME        [SERVICE]     styleserve  (the Cloud Run service named in the next step)
  --enable-apis         [ENABLE_APIS=1] enable missing APIs instead of stopping
  --dry-run             [DRY_RUN=1]   print every command that would change something, run none
  -h, --help            this text

Needs: gcloud (logged in), a project with billing and Cloud Run L4 GPU quota (without zonal
redundancy) in REGION. See infra/README.md.
EOF
}

parse_args() {
  local given=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --style) need_value "$@"; ((given)) || STYLES=(); given=1; STYLES+=("$2"); shift ;;
      --name) need_value "$@"; STYLE_NAME="$2"; shift ;;
      --bucket) need_value "$@"; BUCKET="$2"; shift ;;
      --photos) need_value "$@"; PHOTOS="$2"; shift ;;
      --project) need_value "$@"; PROJECT="$2"; shift ;;
      --region) need_value "$@"; REGION="$2"; shift ;;
      --job) need_value "$@"; JOB="$2"; shift ;;
      --repo) need_value "$@"; ARTIFACT_REPO="$2"; shift ;;
      --service-account) need_value "$@"; TRAIN_SERVICE_ACCOUNT="$2"; shift ;;
      --build-service-account) need_value "$@"; BUILD_SERVICE_ACCOUNT="$2"; shift ;;
      --archs) need_value "$@"; ARCHS="$2"; shift ;;
      --add-style) ADD_STYLE=1 ;;
      --steps) need_value "$@"; STEPS="$2"; shift ;;
      --fast-steps) need_value "$@"; FAST_STEPS="$2"; shift ;;
      --loss-net) need_value "$@"; LOSS_NET="$2"; shift ;;
      --image-size) need_value "$@"; IMAGE_SIZE="$2"; shift ;;
      --batch-size) need_value "$@"; BATCH_SIZE="$2"; shift ;;
      --train-args) need_value "$@"; TRAIN_ARGS="$2"; shift ;;
      --task-timeout) need_value "$@"; TASK_TIMEOUT="$2"; shift ;;
      --time-budget) need_value "$@"; TIME_BUDGET="$2"; shift ;;
      --max-executions) need_value "$@"; MAX_EXECUTIONS="$2"; shift ;;
      --torch-index) need_value "$@"; TORCH_INDEX="$2"; shift ;;
      --torch-spec) need_value "$@"; TORCH_SPEC="$2"; shift ;;
      --image) need_value "$@"; TRAIN_IMAGE="$2"; shift ;;
      --image-tag) need_value "$@"; IMAGE_TAG="$2"; shift ;;
      --service) need_value "$@"; SERVICE="$2"; shift ;;
      --enable-apis) ENABLE_APIS=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
  done
}

# The painting files STYLES names (a folder: its .jpg/.png/.webp files), into PAINTINGS.
collect_paintings() {
  PAINTINGS=()
  local s found ext
  for s in "${STYLES[@]}"; do
    if [[ -d "$s" ]]; then
      mapfile -t found < <(find "$s" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' \
        -o -iname '*.png' -o -iname '*.webp' \) | sort)
      ((${#found[@]})) || die "no .jpg, .png or .webp paintings in $s"
      PAINTINGS+=("${found[@]}")
      continue
    fi
    [[ -f "$s" ]] || die "painting $s not found"
    ext="${s##*.}"
    [[ "${ext,,}" =~ ^(jpg|jpeg|png|webp)$ ]] || die "the painting must be a .jpg, .png or .webp file (got $s)"
    PAINTINGS+=("$s")
  done
  local names
  names="$(for s in "${PAINTINGS[@]}"; do basename "$s"; done | sort | uniq -d)"
  [[ -z "$names" ]] || die "two paintings share the file name ${names%%$'\n'*}: each names its style in the network"
}

validate() {
  ((${#STYLES[@]})) || die "--style PAINTING is required (see --help)"
  collect_paintings
  MULTI=0
  ((${#PAINTINGS[@]} == 1)) || MULTI=1
  STYLE_FILE="${PAINTINGS[0]}"
  STYLE_EXT="${STYLE_FILE##*.}"
  STYLE_EXT="${STYLE_EXT,,}"
  if [[ -z "$STYLE_NAME" ]]; then
    if [[ "$MULTI" == 1 ]]; then
      ((${#STYLES[@]} == 1)) || die "several paintings train one network: name it with --name NAME"
      STYLE_NAME="$(basename "${STYLES[0]}")"
    else
      STYLE_NAME="$(basename "$STYLE_FILE")"
      STYLE_NAME="${STYLE_NAME%.*}"
    fi
    STYLE_NAME="${STYLE_NAME,,}"
    STYLE_NAME="${STYLE_NAME//[^a-z0-9_-]/_}"
  fi
  if [[ "$MULTI" == 1 ]]; then
    [[ "$ADD_STYLE" == 0 ]] || die "--add-style adds one painting; give one --style"
    [[ "$ARCHS" != "johnson fast" ]] ||
      die "a network of several paintings trains one arch: --archs fast (the default) or johnson"
    : "${ARCHS:=fast}"
  fi
  : "${ARCHS:=johnson fast}"
  [[ "$STYLE_NAME" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] ||
    die "--name wants a style id of lowercase letters, digits, '_' and '-' (got '$STYLE_NAME')"
  BUCKET="${BUCKET#gs://}"
  BUCKET="${BUCKET%/}"
  [[ -n "$BUCKET" ]] || die "--bucket NAME is required (see --help)"
  [[ "$BUCKET" =~ ^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$ ]] || die "--bucket wants a bucket name like my-styles (got '$BUCKET')"
  [[ -z "$PHOTOS" || -d "$PHOTOS" ]] || die "photos folder $PHOTOS not found"
  if [[ "$ADD_STYLE" == 1 ]]; then
    [[ "$ARCHS" == "johnson fast" || "$ARCHS" == fast ]] ||
      die "--add-style adds a style to the bundled fast network; leave out --archs (got '$ARCHS')"
    ARCHS=fast
    [[ "$STYLE_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] ||
      die "--add-style names the style inside a network: letters, digits and '_', not first a digit (got '$STYLE_NAME'); pass --name"
  fi
  : "${STEPS:=$([[ "$ADD_STYLE" == 1 ]] && echo 400 || echo 40000)}"
  local n
  for n in STEPS FAST_STEPS IMAGE_SIZE BATCH_SIZE TASK_TIMEOUT MAX_EXECUTIONS; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive whole number, got '${!n}'"
  done
  ((TASK_TIMEOUT <= 3600)) || die "GPU job tasks run at most 3600 s (got --task-timeout $TASK_TIMEOUT)"
  : "${TIME_BUDGET:=$((TASK_TIMEOUT - 600))}"
  [[ "$TIME_BUDGET" =~ ^[1-9][0-9]*$ ]] || die "TIME_BUDGET must be a positive whole number, got '$TIME_BUDGET'"
  ((TIME_BUDGET + 300 <= TASK_TIMEOUT)) ||
    die "--time-budget $TIME_BUDGET leaves under 5 minutes of the $TASK_TIMEOUT s task for start-up, saving and export"
  case "$ARCHS" in
    "johnson fast" | johnson | fast) ;;
    *) die "--archs must be \"johnson fast\", johnson or fast (got '$ARCHS')" ;;
  esac
  case "$LOSS_NET" in
    auto | vgg16 | efficientnet-lite0) ;;
    *) die "--loss-net must be auto, vgg16 or efficientnet-lite0 (got '$LOSS_NET')" ;;
  esac
  [[ "$TRAIN_ARGS" != *";"* ]] || die "--train-args may not contain ';'"
  if [[ -z "$TRAIN_SERVICE_ACCOUNT" ]]; then
    [[ "$JOB" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
      die "cannot make a service account id from job name '$JOB'; pass --service-account EMAIL"
    TRAIN_SERVICE_ACCOUNT="$JOB@$PROJECT.iam.gserviceaccount.com"
  fi
  [[ "$ARTIFACT_REPO" =~ ^[a-z][a-z0-9-]{4,23}$ ]] ||
    die "--repo wants 5-24 lowercase letters, digits and '-' (the build service account is named REPO-build; got '$ARTIFACT_REPO')"
  : "${BUILD_SERVICE_ACCOUNT:=${ARTIFACT_REPO}-build@$PROJECT.iam.gserviceaccount.com}"
  check_region
}

ensure_bucket() {
  if gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT" --format='value(name)' \
    >/dev/null 2>&1; then
    log "bucket gs://$BUCKET found"
    return 0
  fi
  mutate gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" --location="$REGION" \
    --uniform-bucket-level-access --quiet
}

upload_inputs() {
  if [[ "$MULTI" == 1 ]]; then
    # Exactly these paintings in the network's folder: one left from an earlier run would
    # become a style of this network.
    local staged
    if [[ "$DRY_RUN" == 1 ]]; then
      staged="PAINTINGS_DIR"
      echo "# PAINTINGS_DIR: a temporary directory holding ${PAINTINGS[*]}"
    else
      staged="$(mktemp -d)"
      cp "${PAINTINGS[@]}" "$staged/"
    fi
    log "syncing ${#PAINTINGS[@]} paintings to gs://$BUCKET/styles/$STYLE_NAME/"
    mutate gcloud storage rsync "$staged" "gs://$BUCKET/styles/$STYLE_NAME" \
      --delete-unmatched-destination-objects --project="$PROJECT"
    [[ "$DRY_RUN" == 1 ]] || rm -rf "$staged"
  else
    log "uploading the painting as gs://$BUCKET/styles/$STYLE_NAME.$STYLE_EXT"
    mutate gcloud storage cp "$STYLE_FILE" "gs://$BUCKET/styles/$STYLE_NAME.$STYLE_EXT" --project="$PROJECT"
  fi
  if [[ -n "$PHOTOS" ]]; then
    log "syncing training photos $PHOTOS to gs://$BUCKET/photos (only new or changed files)"
    mutate gcloud storage rsync "$PHOTOS" "gs://$BUCKET/photos" --recursive --project="$PROJECT"
  elif gcloud storage ls "gs://$BUCKET/photos/" --project="$PROJECT" 2>/dev/null | grep -q .; then
    log "using the training photos already in gs://$BUCKET/photos"
  elif [[ "$DRY_RUN" == 1 ]]; then
    log "warning: gs://$BUCKET/photos is empty; a real run needs --photos DIR"
  else
    die "gs://$BUCKET/photos has no training photos; pass --photos DIR (a folder of photos, e.g. COCO train2014)"
  fi
}

ensure_service_account() {
  if ! gcloud iam service-accounts describe "$TRAIN_SERVICE_ACCOUNT" --project="$PROJECT" \
    --format='value(email)' >/dev/null 2>&1; then
    [[ "$TRAIN_SERVICE_ACCOUNT" == "$JOB@$PROJECT.iam.gserviceaccount.com" ]] ||
      die "service account $TRAIN_SERVICE_ACCOUNT not found in $PROJECT"
    mutate gcloud iam service-accounts create "$JOB" --project="$PROJECT" \
      --display-name="$JOB Cloud Run training job (bucket access only)" --quiet
  fi
  # Read and write objects in this bucket only; no project roles. Retried: the account may have
  # been created seconds ago.
  mutate_retry gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" \
    --member="serviceAccount:$TRAIN_SERVICE_ACCOUNT" --role=roles/storage.objectUser \
    --project="$PROJECT" --quiet
}

stage_context() {
  mkdir -p "$1/infra"
  cp "$REPO_ROOT/pyproject.toml" "$1/"
  tar -C "$REPO_ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - training export \
    function/stylefn/__init__.py function/stylefn/contract.py function/models | tar -C "$1" -xf -
  cp "$SCRIPT_DIR/train_job.sh" "$SCRIPT_DIR/_common.sh" "$1/infra/"
  # gcloud builds submit --tag takes no build args: write the torch choice into the ARG lines.
  sed -e "s|^ARG TORCH_INDEX=.*|ARG TORCH_INDEX=$TORCH_INDEX|" -e "s|^ARG TORCH_SPEC=.*|ARG TORCH_SPEC=$TORCH_SPEC|" \
    "$SCRIPT_DIR/Dockerfile.train" >"$1/Dockerfile"
}

build_image() {
  if [[ -n "$TRAIN_IMAGE" ]]; then
    IMAGE_REF="$TRAIN_IMAGE"
    log "using training image $IMAGE_REF (no build)"
    return 0
  fi
  ensure_repo
  ensure_build_service_account
  IMAGE="$REGION-docker.pkg.dev/$PROJECT/$ARTIFACT_REPO/$JOB:$IMAGE_TAG"
  local context
  if [[ "$DRY_RUN" == 1 ]]; then
    context="BUILD_CONTEXT"
    echo "# BUILD_CONTEXT: a temporary directory holding pyproject.toml, training/, export/, function/stylefn/contract.py, function/models/ (the bundled network --add-style joins), infra/train_job.sh, infra/_common.sh and infra/Dockerfile.train as Dockerfile"
  else
    context="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$context'" EXIT
    stage_context "$context"
  fi
  log "building the training image (torch from $TORCH_INDEX; ~10 minutes)"
  submit_build "$context" --tag="$IMAGE" --timeout=45m --machine-type=e2-highcpu-8
  resolve_digest
}

deploy_job() {
  local style_image="/bucket/styles/$STYLE_NAME.$STYLE_EXT"
  [[ "$MULTI" == 0 ]] || style_image="/bucket/styles/$STYLE_NAME"
  local env_vars="STYLE_NAME=$STYLE_NAME;BUCKET_DIR=/bucket;STYLE_IMAGE=$style_image"
  env_vars+=";ARCHS=$ARCHS;ADD_STYLE=$ADD_STYLE;STEPS=$STEPS;FAST_STEPS=$FAST_STEPS;TIME_BUDGET=$TIME_BUDGET"
  env_vars+=";LOSS_NET=$LOSS_NET;IMAGE_SIZE=$IMAGE_SIZE;BATCH_SIZE=$BATCH_SIZE;DEVICE=cuda"
  env_vars+=";TRAIN_ARGS=--precision bf16 --channels-last --workers 4${TRAIN_ARGS:+ $TRAIN_ARGS}"
  log "deploying Cloud Run job $JOB (1 x L4, gs://$BUCKET at /bucket)"
  # '^;^' makes ';' the list separator so values may contain commas.
  mutate gcloud run jobs deploy "$JOB" --image="$IMAGE_REF" --project="$PROJECT" --region="$REGION" \
    --gpu=1 --gpu-type=nvidia-l4 --no-gpu-zonal-redundancy --cpu=4 --memory=16Gi \
    --tasks=1 --max-retries=1 --task-timeout="${TASK_TIMEOUT}s" \
    --service-account="$TRAIN_SERVICE_ACCOUNT" \
    "--add-volume=name=bucket,type=cloud-storage,bucket=$BUCKET" \
    --add-volume-mount=volume=bucket,mount-path=/bucket \
    --set-env-vars="^;^$env_vars" --quiet
}

# The job's RUNS_DIR/status.json, e.g. {"state": "training", "detail": "johnson at step 9000 of 40000"}.
read_status() {
  gcloud storage cat "gs://$BUCKET/runs/$STYLE_NAME/status.json" --project="$PROJECT" 2>/dev/null || true
}

run_job() {
  local i status previous=""
  for ((i = 1; i <= MAX_EXECUTIONS; i++)); do
    log "execution $i of at most $MAX_EXECUTIONS (up to $((TASK_TIMEOUT / 60)) minutes; logs: gcloud run jobs executions list --job=$JOB --region=$REGION --project=$PROJECT)"
    local execute=(gcloud run jobs execute "$JOB" --project="$PROJECT" --region="$REGION" --wait --quiet)
    if [[ "$DRY_RUN" == 1 ]]; then
      mutate "${execute[@]}"
      echo "# ... executed again while gs://$BUCKET/runs/$STYLE_NAME/status.json says \"training\" (at most $MAX_EXECUTIONS times)"
      return 0
    fi
    if ! mutate "${execute[@]}"; then
      # A failed execution (a crash, the 1-hour task limit) keeps its last checkpoint in the bucket.
      die "execution $i failed; its logs: gcloud run jobs executions list --job=$JOB --region=$REGION --project=$PROJECT
Status: $(read_status)
Resume with the same command: training continues from gs://$BUCKET/runs/$STYLE_NAME."
    fi
    status="$(read_status)"
    log "status: ${status:-none}"
    if [[ "$status" == *'"state": "done"'* ]]; then
      return 0
    fi
    [[ -n "$status" && "$status" != "$previous" ]] ||
      die "the job made no progress (status: ${status:-none}); read its logs: gcloud run jobs executions list --job=$JOB --region=$REGION --project=$PROJECT"
    previous="$status"
  done
  die "not finished after $MAX_EXECUTIONS executions ($status). Resume with the same command (training continues from gs://$BUCKET/runs/$STYLE_NAME)."
}

print_next() {
  local files="gs://$BUCKET/$STYLE_NAME.onnx" svc_update
  [[ "$ARCHS" == johnson ]] || files+=" gs://$BUCKET/$STYLE_NAME.fast.onnx"
  [[ "$ARCHS" == fast ]] && files="gs://$BUCKET/$STYLE_NAME.fast.onnx"
  svc_update=(gcloud run services update "$SERVICE" --project="$PROJECT" --region="$REGION"
    "--update-env-vars=MODELS_REFRESH=$IMAGE_TAG")
  echo
  echo "Style '$STYLE_NAME': $files"
  echo "Check: gcloud storage ls gs://$BUCKET/*.onnx"
  echo "Next step: serve the bucket's models (a new service revision reads them at start-up, no rebuild):"
  echo "  infra/deploy.sh --project $PROJECT --region $REGION --models-bucket $BUCKET"
  echo "A service already deployed with --models-bucket $BUCKET picks new models up on a new instance; start a new revision now with:"
  echo "  $(quote_cmd "${svc_update[@]}")"
}

main() {
  parse_args "$@"
  require_gcloud
  resolve_project
  validate
  log "project $PROJECT, region $REGION, job $JOB, style $STYLE_NAME, bucket gs://$BUCKET"
  check_apis
  # Before the ~10-minute build, not after it.
  check_gpu_quota 1 0
  ensure_bucket
  upload_inputs
  ensure_service_account
  build_image
  deploy_job
  run_job
  print_next
}

main "$@"
