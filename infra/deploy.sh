#!/usr/bin/env bash
# Deploy function/ to Cloud Run with one NVIDIA L4 GPU per instance.
#
# Builds a container from infra/Dockerfile (Cloud Build -> Artifact Registry) rather than a
# `--source function/ --function stylize` deploy: Cloud Run mounts only the GPU driver, the
# buildpacks base images carry no CUDA runtime/cuBLAS/cuDNN, so onnxruntime-gpu's CUDA provider
# would not load there unless main.py preloaded pip-installed CUDA wheels itself.
# infra/Dockerfile explains the CUDA/driver pinning.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=_common.sh
source "$SCRIPT_DIR/_common.sh"

readonly REQUIRED_APIS="run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com"

# Defaults; every one can be set by flag or by the env var of the same name.
SERVICE="${SERVICE:-styleserve}"
REGION="${REGION:-us-central1}"
PROJECT="${PROJECT:-}"
ARTIFACT_REPO="${ARTIFACT_REPO:-styleserve}"
FUNCTION_DIR="${FUNCTION_DIR:-$REPO_ROOT/function}"
CPU="${CPU:-4}"
MEMORY="${MEMORY:-16Gi}"
CONCURRENCY="${CONCURRENCY:-4}"
MIN_INSTANCES="${MIN_INSTANCES:-0}"
MAX_INSTANCES="${MAX_INSTANCES:-1}"
GPU_ZONAL_REDUNDANCY="${GPU_ZONAL_REDUNDANCY:-0}"
PUBLIC="${PUBLIC:-0}"
ENABLE_APIS="${ENABLE_APIS:-0}"
DRY_RUN="${DRY_RUN:-0}"
SMOKE="${SMOKE:-0}"
IMAGE_TAG="${IMAGE_TAG:-$(date -u +%Y%m%d-%H%M%S)}"
DEFAULT_STYLE="${DEFAULT_STYLE:-}"
EXTRA_ENV=()

usage() {
  cat <<EOF
Usage: infra/deploy.sh [options]

Builds infra/Dockerfile with Cloud Build, pushes it to Artifact Registry and deploys it to
Cloud Run with one NVIDIA L4 GPU per instance (REQUIRE_GPU=1, so an instance without CUDA
refuses to start). Prints the service URL and a curl line that works.

Options (env var in brackets, then default):
  --project ID          [PROJECT]  GOOGLE_CLOUD_PROJECT, else 'gcloud config get-value project'
  --region REGION       [REGION]   us-central1  (L4 regions: $L4_REGIONS)
  --service NAME        [SERVICE]  styleserve
  --repo NAME           [ARTIFACT_REPO]  styleserve  (Artifact Registry Docker repo, created if missing)
  --cpu N               [CPU]      4     (GPU instances need at least 4)
  --memory SIZE         [MEMORY]   16Gi  (GPU instances need at least 16Gi)
  --concurrency N       [CONCURRENCY]    4  (requests per instance; also the server's THREADS)
  --min-instances N     [MIN_INSTANCES]  0  (>0 keeps a GPU billed around the clock)
  --max-instances N     [MAX_INSTANCES]  1  (must fit your L4 quota in the region)
  --zonal-redundancy    [GPU_ZONAL_REDUNDANCY=1]  off: deploys --no-gpu-zonal-redundancy
  --public              [PUBLIC=1]       allow unauthenticated calls (default: authenticated only)
  --default-style NAME  [DEFAULT_STYLE]  passed to the function as DEFAULT_STYLE
  --env KEY=VALUE       extra env var for the function (repeatable), e.g. MAX_PIXELS=4000000
  --function-dir DIR    [FUNCTION_DIR]   function/
  --image-tag TAG       [IMAGE_TAG]      UTC timestamp
  --enable-apis         [ENABLE_APIS=1]  enable missing APIs instead of stopping
  --smoke               [SMOKE=1]        run infra/smoke_test.sh against the new revision
  --dry-run             [DRY_RUN=1]      print every command that would change something, run none
  -h, --help            this text

Needs: gcloud (logged in), a project with billing, L4 quota in the region; python3 with
Pillow for --smoke.
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --project) need_value "$@"; PROJECT="$2"; shift ;;
      --region) need_value "$@"; REGION="$2"; shift ;;
      --service) need_value "$@"; SERVICE="$2"; shift ;;
      --repo) need_value "$@"; ARTIFACT_REPO="$2"; shift ;;
      --cpu) need_value "$@"; CPU="$2"; shift ;;
      --memory) need_value "$@"; MEMORY="$2"; shift ;;
      --concurrency) need_value "$@"; CONCURRENCY="$2"; shift ;;
      --min-instances) need_value "$@"; MIN_INSTANCES="$2"; shift ;;
      --max-instances) need_value "$@"; MAX_INSTANCES="$2"; shift ;;
      --default-style) need_value "$@"; DEFAULT_STYLE="$2"; shift ;;
      --env) need_value "$@"; EXTRA_ENV+=("$2"); shift ;;
      --function-dir) need_value "$@"; FUNCTION_DIR="$2"; shift ;;
      --image-tag) need_value "$@"; IMAGE_TAG="$2"; shift ;;
      --zonal-redundancy) GPU_ZONAL_REDUNDANCY=1 ;;
      --public) PUBLIC=1 ;;
      --enable-apis) ENABLE_APIS=1 ;;
      --smoke) SMOKE=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
  done
}

validate() {
  local n
  for n in CPU CONCURRENCY MIN_INSTANCES MAX_INSTANCES; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
  done
  # Cloud Run rejects GPU revisions below 4 CPU / 16 GiB; fail before a 10-minute build.
  ((CPU >= 4)) || die "an L4 instance needs at least 4 CPU (got $CPU)"
  [[ "$MEMORY" =~ ^([0-9]+)Gi$ ]] || die "MEMORY must be in Gi, e.g. 16Gi (got '$MEMORY')"
  ((BASH_REMATCH[1] >= 16)) || die "an L4 instance needs at least 16Gi memory (got $MEMORY)"
  ((MAX_INSTANCES >= 1)) || die "MAX_INSTANCES must be at least 1"
  ((MIN_INSTANCES <= MAX_INSTANCES)) || die "MIN_INSTANCES ($MIN_INSTANCES) exceeds MAX_INSTANCES ($MAX_INSTANCES)"
  ((CONCURRENCY >= 1)) || die "CONCURRENCY must be at least 1"
  for n in "${EXTRA_ENV[@]}"; do
    [[ "$n" =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ && "$n" != *";"* ]] || die "--env wants KEY=VALUE without ';', got '$n'"
  done
  [[ -f "$FUNCTION_DIR/main.py" && -f "$FUNCTION_DIR/requirements.txt" ]] ||
    die "$FUNCTION_DIR must contain main.py and requirements.txt"
  check_region
}

check_apis() {
  local enabled missing=() api
  if ! enabled="$(gcloud services list --enabled --project="$PROJECT" --format='value(config.name)')"; then
    die "could not list the enabled APIs of project $PROJECT (logged in? 'gcloud auth login'; billing linked?)"
  fi
  for api in $REQUIRED_APIS; do
    grep -qx "$api" <<<"$enabled" || missing+=("$api")
  done
  ((${#missing[@]} == 0)) && return 0
  local enable_cmd=(gcloud services enable "${missing[@]}" --project="$PROJECT")
  if [[ "$ENABLE_APIS" == 1 || "$DRY_RUN" == 1 ]]; then
    mutate "${enable_cmd[@]}"
  else
    die "these APIs are not enabled in $PROJECT: ${missing[*]}
Enable them with:
  $(quote_cmd "${enable_cmd[@]}")
or re-run with --enable-apis."
  fi
}

ensure_repo() {
  if gcloud artifacts repositories describe "$ARTIFACT_REPO" --location="$REGION" \
    --project="$PROJECT" --format='value(name)' >/dev/null 2>&1; then
    return 0
  fi
  mutate gcloud artifacts repositories create "$ARTIFACT_REPO" --repository-format=docker \
    --location="$REGION" --project="$PROJECT" --description="styleserve images" --quiet
}

# Cloud Build wants the Dockerfile at the root of what it uploads; ship only function/ and
# the Dockerfile, not the whole repo (training data, venvs).
stage_context() {
  mkdir -p "$1/function"
  tar -C "$FUNCTION_DIR" --exclude=__pycache__ --exclude='*.pyc' --exclude=.venv -cf - . |
    tar -C "$1/function" -xf -
  cp "$SCRIPT_DIR/Dockerfile" "$1/Dockerfile"
}

build_image() {
  local context
  if [[ "$DRY_RUN" == 1 ]]; then
    context="BUILD_CONTEXT"
    echo "# BUILD_CONTEXT: a temporary directory holding $FUNCTION_DIR as function/ plus infra/Dockerfile"
  else
    context="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$context'" EXIT
    stage_context "$context"
  fi
  # The CUDA wheels make a ~3 GB image; the default 10-minute build timeout is too tight.
  mutate gcloud builds submit "$context" --tag="$IMAGE" --project="$PROJECT" \
    --timeout=30m --machine-type=e2-highcpu-8 --quiet
}

deploy_service() {
  local env_vars="REQUIRE_GPU=1;THREADS=$CONCURRENCY" kv auth=--no-allow-unauthenticated
  local zonal=--no-gpu-zonal-redundancy
  [[ -n "$DEFAULT_STYLE" ]] && env_vars+=";DEFAULT_STYLE=$DEFAULT_STYLE"
  for kv in "${EXTRA_ENV[@]}"; do env_vars+=";$kv"; done
  [[ "$PUBLIC" == 1 ]] && auth=--allow-unauthenticated
  [[ "$GPU_ZONAL_REDUNDANCY" == 1 ]] && zonal=--gpu-zonal-redundancy
  # '^;^' makes ';' the list separator so values may contain commas (CORS_ORIGINS).
  mutate gcloud run deploy "$SERVICE" --image="$IMAGE" --project="$PROJECT" --region="$REGION" \
    --gpu=1 --gpu-type=nvidia-l4 "$zonal" --no-cpu-throttling \
    --cpu="$CPU" --memory="$MEMORY" --concurrency="$CONCURRENCY" \
    --min-instances="$MIN_INSTANCES" --max-instances="$MAX_INSTANCES" \
    --set-env-vars="^;^$env_vars" "$auth" --quiet
}

print_result() {
  local url
  url="$(gcloud run services describe "$SERVICE" --project="$PROJECT" --region="$REGION" \
    --format='value(status.url)' 2>/dev/null || true)"
  if [[ -z "$url" ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "deployed, but could not read the URL of $SERVICE"
    url="https://SERVICE-URL"
  fi
  local auth_header="" token_arg=""
  if [[ "$PUBLIC" != 1 ]]; then
    # Left unexpanded on purpose: the reader's shell fetches a fresh token.
    # shellcheck disable=SC2016
    auth_header=' -H "Authorization: Bearer $(gcloud auth print-identity-token)"'
    # shellcheck disable=SC2016
    token_arg=' --token "$(gcloud auth print-identity-token)"'
  fi
  echo
  echo "Service URL: $url"
  echo "Stylize a picture (multipart; JSON and raw bodies work too, see README):"
  echo "  curl -sS -X POST \"$url/\"$auth_header -F image=@infra/smoke.jpg -F format=png -o stylized.png"
  echo "Smoke test:"
  echo "  infra/smoke_test.sh $url$token_arg"
  if [[ "$SMOKE" == 1 ]]; then
    local smoke=("$SCRIPT_DIR/smoke_test.sh" "$url" --expect-gpu)
    if [[ "$DRY_RUN" == 1 ]]; then
      echo "+ $(quote_cmd "${smoke[@]}")${token_arg}"
    else
      [[ "$PUBLIC" == 1 ]] || smoke+=(--token "$(gcloud auth print-identity-token)")
      "${smoke[@]}"
    fi
  fi
}

main() {
  parse_args "$@"
  require_gcloud
  resolve_project
  validate
  IMAGE="$REGION-docker.pkg.dev/$PROJECT/$ARTIFACT_REPO/$SERVICE:$IMAGE_TAG"
  log "project $PROJECT, region $REGION, service $SERVICE, image $IMAGE"
  check_apis
  ensure_repo
  build_image
  deploy_service
  print_result
}

main "$@"
