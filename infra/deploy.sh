#!/usr/bin/env bash
# Deploy function/ to Cloud Run on CPUs (the default, also --cpu-only), or (--gpu) with one NVIDIA
# L4 GPU per instance. Why CPU by default: the cost table in infra/README.md ("Costs").
#
# Builds a container from infra/Dockerfile (Cloud Build -> Artifact Registry) rather than a
# `--source function/ --function stylize` deploy: Cloud Run mounts only the GPU driver, the
# buildpacks base images carry no CUDA runtime/cuBLAS/cuDNN, so onnxruntime-gpu's CUDA provider
# would not load there unless main.py preloaded pip-installed CUDA wheels itself.
# infra/Dockerfile explains the CUDA/driver pinning; infra/Dockerfile.cpu is the CPU image.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=_common.sh
source "$SCRIPT_DIR/_common.sh"

# iam: the runtime and build service accounts are created with --quiet, under which gcloud will
# not offer to enable it.
readonly REQUIRED_APIS="run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com iam.googleapis.com"

# Defaults; every one can be set by flag or by the env var of the same name.
SERVICE="${SERVICE:-styleserve}"
REGION="${REGION:-$DEFAULT_REGION}"
PROJECT="${PROJECT:-}"
ARTIFACT_REPO="${ARTIFACT_REPO:-styleserve}"
FUNCTION_DIR="${FUNCTION_DIR:-$REPO_ROOT/function}"
CPU_ONLY="${CPU_ONLY:-1}"  # 0 (--gpu): an L4 GPU service
# Empty: the mode's default, filled in after the flags are read (CPU / --gpu).
CPU="${CPU:-}"
MEMORY="${MEMORY:-}"
CONCURRENCY="${CONCURRENCY:-}"
MIN_INSTANCES="${MIN_INSTANCES:-0}"
MAX_INSTANCES="${MAX_INSTANCES:-}"
REQUEST_TIMEOUT="${REQUEST_TIMEOUT:-300}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-}"
BUILD_SERVICE_ACCOUNT="${BUILD_SERVICE_ACCOUNT:-}"
MODELS_BUCKET="${MODELS_BUCKET:-}"
MODELS_MODE="${MODELS_MODE:-beside}"
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

Builds infra/Dockerfile.cpu (onnxruntime's CPU build, no CUDA libraries) with Cloud Build, pushes
it to Artifact Registry and deploys it, by image digest, to Cloud Run as a CPU service serving
the 'fast' models by default, with request-based billing (the default: per photo it costs a
fraction of what an L4 instance does, infra/README.md "Costs"). --gpu builds infra/Dockerfile
instead and deploys with one NVIDIA L4 GPU per instance (REQUIRE_GPU=1, so an instance without
CUDA refuses to start).
Every revision gets a startup probe on /healthz (an instance takes traffic only once its
models are loaded), runs as a dedicated service account with no project roles, and has an
explicit request timeout. The build runs as its own service account too, with only the roles a
build needs. With --gpu, the project's L4 quota is read before the build where the Cloud Quotas
API allows it. Prints the service URL and a curl line that works.

Options (env var in brackets, then default):
  --project ID          [PROJECT]  GOOGLE_CLOUD_PROJECT, else 'gcloud config get-value project'
  --region REGION       [REGION]   $DEFAULT_REGION  (L4: $L4_REGIONS; by invitation: $L4_INVITATION_REGIONS)
  --service NAME        [SERVICE]  styleserve
  --repo NAME           [ARTIFACT_REPO]  styleserve  (Artifact Registry Docker repo, created if missing)
  --cpu-only            [CPU_ONLY=1]     the default: a CPU service, infra/Dockerfile.cpu, DEFAULT_ARCH=fast
  --gpu                 [CPU_ONLY=0]     one NVIDIA L4 per instance, infra/Dockerfile (needs L4 quota)
  --cpu N               [CPU]      2 | --gpu: 4 (at least 4)
  --memory SIZE         [MEMORY]   4Gi | --gpu: 16Gi (at least 16Gi)
  --concurrency N       [CONCURRENCY]    4 | --gpu: 4  (requests per instance; also THREADS)
  --min-instances N     [MIN_INSTANCES]  0  (>0 keeps an instance billed around the clock)
  --max-instances N     [MAX_INSTANCES]  3 | --gpu: 1 (must fit your L4 quota)
  --timeout SECONDS     [REQUEST_TIMEOUT] 300 (Cloud Run request timeout, 1..3600)
  --service-account EMAIL [SERVICE_ACCOUNT] the identity the service runs as; default
                        SERVICE-run@PROJECT.iam.gserviceaccount.com, created if missing, with no
                        project roles (only read access to --models-bucket)
  --build-service-account EMAIL [BUILD_SERVICE_ACCOUNT] the identity Cloud Build runs as; default
                        REPO-build@PROJECT.iam.gserviceaccount.com, created if missing, with
                        artifactregistry.writer on REPO, storage.objectUser on
                        gs://PROJECT_cloudbuild and logging.logWriter (infra/README.md)
  --models-bucket NAME  [MODELS_BUCKET]  mount this Cloud Storage bucket read-only at /models
                        and serve the *.onnx at its top level (what infra/train.sh writes)
  --models-mode MODE    [MODELS_MODE]    beside (default: bucket models plus the bundled ones;
                        a style+arch may not be in both) | instead (only the bucket's)
  --zonal-redundancy    [GPU_ZONAL_REDUNDANCY=1]  --gpu; off: deploys --no-gpu-zonal-redundancy
  --public              [PUBLIC=1]       allow unauthenticated calls (default: authenticated only)
  --default-style NAME  [DEFAULT_STYLE]  passed to the function as DEFAULT_STYLE
  --env KEY=VALUE       extra env var for the function (repeatable), e.g. MAX_PIXELS=4000000
  --function-dir DIR    [FUNCTION_DIR]   function/
  --image-tag TAG       [IMAGE_TAG]      UTC timestamp
  --enable-apis         [ENABLE_APIS=1]  enable missing APIs instead of stopping
  --smoke               [SMOKE=1]        run infra/smoke_test.sh against the new revision
  --dry-run             [DRY_RUN=1]      print every command that would change something, run none
  -h, --help            this text

Needs: gcloud (logged in), a project with billing, the roles listed in infra/README.md
("Roles the deployer needs"), L4 quota in the region (only for --gpu); python3 with Pillow for
--smoke. See infra/README.md.
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --project) need_value "$@"; PROJECT="$2"; shift ;;
      --region) need_value "$@"; REGION="$2"; shift ;;
      --service) need_value "$@"; SERVICE="$2"; shift ;;
      --repo) need_value "$@"; ARTIFACT_REPO="$2"; shift ;;
      --cpu-only) CPU_ONLY=1 ;;
      --gpu) CPU_ONLY=0 ;;
      --cpu) need_value "$@"; CPU="$2"; shift ;;
      --timeout) need_value "$@"; REQUEST_TIMEOUT="$2"; shift ;;
      --service-account) need_value "$@"; SERVICE_ACCOUNT="$2"; shift ;;
      --build-service-account) need_value "$@"; BUILD_SERVICE_ACCOUNT="$2"; shift ;;
      --models-bucket) need_value "$@"; MODELS_BUCKET="${2#gs://}"; MODELS_BUCKET="${MODELS_BUCKET%/}"; shift ;;
      --models-mode) need_value "$@"; MODELS_MODE="$2"; shift ;;
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
  if [[ "$CPU_ONLY" == 1 ]]; then
    : "${CPU:=2}" "${MEMORY:=4Gi}" "${CONCURRENCY:=4}" "${MAX_INSTANCES:=3}"
  else
    : "${CPU:=4}" "${MEMORY:=16Gi}" "${CONCURRENCY:=4}" "${MAX_INSTANCES:=1}"
  fi
  for n in CPU CONCURRENCY MIN_INSTANCES MAX_INSTANCES REQUEST_TIMEOUT; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
  done
  ((REQUEST_TIMEOUT >= 1 && REQUEST_TIMEOUT <= 3600)) ||
    die "--timeout must be 1..3600 seconds (got $REQUEST_TIMEOUT)"
  [[ "$MEMORY" =~ ^([0-9]+)(Mi|Gi)$ ]] || die "MEMORY must be in Mi or Gi, e.g. 16Gi (got '$MEMORY')"
  if [[ "$CPU_ONLY" != 1 ]]; then
    # Cloud Run rejects GPU revisions below 4 CPU / 16 GiB; fail before a 10-minute build.
    ((CPU >= 4)) || die "an L4 instance needs at least 4 CPU (got $CPU)"
    [[ "${BASH_REMATCH[2]}" == Gi && "${BASH_REMATCH[1]}" -ge 16 ]] ||
      die "an L4 instance needs at least 16Gi memory (got $MEMORY)"
  fi
  [[ "$MODELS_MODE" == beside || "$MODELS_MODE" == instead ]] ||
    die "--models-mode must be beside or instead (got '$MODELS_MODE')"
  if [[ -n "$MODELS_BUCKET" ]]; then
    [[ "$MODELS_BUCKET" =~ ^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$ ]] ||
      die "--models-bucket wants a bucket name like my-models (got '$MODELS_BUCKET')"
  fi
  if [[ -z "$SERVICE_ACCOUNT" ]]; then
    local sa_id="${SERVICE}-run"
    [[ "$sa_id" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
      die "cannot make a service account id from service name '$SERVICE'; pass --service-account EMAIL"
    SERVICE_ACCOUNT="$sa_id@$PROJECT.iam.gserviceaccount.com"
  fi
  [[ "$SERVICE_ACCOUNT" == *@*.iam.gserviceaccount.com ]] ||
    die "--service-account wants an email like NAME@PROJECT.iam.gserviceaccount.com (got '$SERVICE_ACCOUNT')"
  [[ "$ARTIFACT_REPO" =~ ^[a-z][a-z0-9-]{4,23}$ ]] ||
    die "--repo wants 5-24 lowercase letters, digits and '-' (the build service account is named REPO-build; got '$ARTIFACT_REPO')"
  : "${BUILD_SERVICE_ACCOUNT:=${ARTIFACT_REPO}-build@$PROJECT.iam.gserviceaccount.com}"
  [[ "$BUILD_SERVICE_ACCOUNT" == *@*.iam.gserviceaccount.com ]] ||
    die "--build-service-account wants an email like NAME@PROJECT.iam.gserviceaccount.com (got '$BUILD_SERVICE_ACCOUNT')"
  ((MAX_INSTANCES >= 1)) || die "MAX_INSTANCES must be at least 1"
  ((MIN_INSTANCES <= MAX_INSTANCES)) || die "MIN_INSTANCES ($MIN_INSTANCES) exceeds MAX_INSTANCES ($MAX_INSTANCES)"
  ((CONCURRENCY >= 1)) || die "CONCURRENCY must be at least 1"
  for n in "${EXTRA_ENV[@]}"; do
    [[ "$n" =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ && "$n" != *";"* ]] || die "--env wants KEY=VALUE without ';', got '$n'"
  done
  [[ -f "$FUNCTION_DIR/main.py" && -f "$FUNCTION_DIR/requirements.txt" ]] ||
    die "$FUNCTION_DIR must contain main.py and requirements.txt"
  if [[ "$CPU_ONLY" == 1 ]]; then
    [[ -f "$FUNCTION_DIR/requirements-cpu.txt" ]] ||
      die "$FUNCTION_DIR must contain requirements-cpu.txt for --cpu-only"
  else
    check_region
  fi
}

# Cloud Build wants the Dockerfile at the root of what it uploads; ship only function/ and
# the Dockerfile, not the whole repo (training data, venvs).
stage_context() {
  mkdir -p "$1/function"
  tar -C "$FUNCTION_DIR" --exclude=__pycache__ --exclude='*.pyc' --exclude=.venv -cf - . |
    tar -C "$1/function" -xf -
  cp "$SCRIPT_DIR/$DOCKERFILE" "$1/Dockerfile"
}

# The dedicated runtime identity: no project roles at all (Cloud Run's service agent pulls the
# image and ships the logs); read access to the models bucket is granted on that bucket only.
ensure_service_account() {
  if gcloud iam service-accounts describe "$SERVICE_ACCOUNT" --project="$PROJECT" \
    --format='value(email)' >/dev/null 2>&1; then
    return 0
  fi
  local default_sa="${SERVICE}-run@$PROJECT.iam.gserviceaccount.com"
  [[ "$SERVICE_ACCOUNT" == "$default_sa" ]] ||
    die "service account $SERVICE_ACCOUNT not found in $PROJECT (create it, or leave --service-account out to get $default_sa)"
  mutate gcloud iam service-accounts create "${SERVICE}-run" --project="$PROJECT" \
    --display-name="$SERVICE Cloud Run runtime (no project roles)" --quiet
}

# Preflight (read-only), before anything is created.
check_models_bucket() {
  [[ -n "$MODELS_BUCKET" ]] || return 0
  gcloud storage buckets describe "gs://$MODELS_BUCKET" --project="$PROJECT" \
    --format='value(name)' >/dev/null 2>&1 && return 0
  local msg="bucket gs://$MODELS_BUCKET not found or not readable (infra/train.sh creates it; or: gcloud storage buckets create gs://$MODELS_BUCKET --location=$REGION --uniform-bucket-level-access)"
  [[ "$DRY_RUN" == 1 ]] || die "$msg"
  log "warning: $msg"
}

grant_models_bucket() {
  [[ -n "$MODELS_BUCKET" ]] || return 0
  # Retried: the runtime service account may have been created seconds ago.
  mutate_retry gcloud storage buckets add-iam-policy-binding "gs://$MODELS_BUCKET" \
    --member="serviceAccount:$SERVICE_ACCOUNT" --role=roles/storage.objectViewer \
    --project="$PROJECT" --quiet
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
  submit_build "$context" --tag="$IMAGE" --timeout=30m --machine-type=e2-highcpu-8
  # Deploy the digest just pushed, not the tag: the revision runs exactly this build.
  resolve_digest
}

deploy_service() {
  local env_vars kv auth=--no-allow-unauthenticated
  local mode_flags=() volume_flags=()
  if [[ "$CPU_ONLY" == 1 ]]; then
    env_vars="DEFAULT_ARCH=fast;THREADS=$CONCURRENCY"
    # Request-based billing: CPU only while requests run, so idle instances cost nothing.
    mode_flags=(--cpu-throttling)
  else
    env_vars="REQUIRE_GPU=1;THREADS=$CONCURRENCY"
    local zonal=--no-gpu-zonal-redundancy
    [[ "$GPU_ZONAL_REDUNDANCY" == 1 ]] && zonal=--gpu-zonal-redundancy
    mode_flags=(--gpu=1 --gpu-type=nvidia-l4 "$zonal" --no-cpu-throttling)
  fi
  if [[ -n "$MODELS_BUCKET" ]]; then
    volume_flags=(
      "--add-volume=name=models,type=cloud-storage,bucket=$MODELS_BUCKET,readonly=true"
      "--add-volume-mount=volume=models,mount-path=/models"
    )
    if [[ "$MODELS_MODE" == instead ]]; then
      env_vars+=";MODEL_DIR=/models"
    else
      env_vars+=";MODEL_DIR=/models:/app/models"
    fi
  fi
  [[ -n "$DEFAULT_STYLE" ]] && env_vars+=";DEFAULT_STYLE=$DEFAULT_STYLE"
  for kv in "${EXTRA_ENV[@]}"; do env_vars+=";$kv"; done
  [[ "$PUBLIC" == 1 ]] && auth=--allow-unauthenticated
  # /healthz answers 200 only once the models are loaded (and, on a GPU, CUDA works), so an
  # instance gets traffic only when it can serve: 24 x 10 s = 4 minutes to get there.
  local probe="httpGet.path=/healthz,initialDelaySeconds=0,periodSeconds=10,timeoutSeconds=5,failureThreshold=24"
  # '^;^' makes ';' the list separator so values may contain commas (CORS_ORIGINS).
  mutate gcloud run deploy "$SERVICE" --image="$IMAGE_REF" --project="$PROJECT" --region="$REGION" \
    "${mode_flags[@]}" \
    --cpu="$CPU" --memory="$MEMORY" --concurrency="$CONCURRENCY" \
    --min-instances="$MIN_INSTANCES" --max-instances="$MAX_INSTANCES" \
    --timeout="$REQUEST_TIMEOUT" --service-account="$SERVICE_ACCOUNT" \
    --startup-probe="$probe" "${volume_flags[@]}" \
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
    local smoke=("$SCRIPT_DIR/smoke_test.sh" "$url")
    [[ "$CPU_ONLY" == 1 ]] || smoke+=(--expect-gpu)
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
  DOCKERFILE=Dockerfile
  IMAGE_REF=""
  local image_name="$SERVICE"
  if [[ "$CPU_ONLY" == 1 ]]; then
    DOCKERFILE=Dockerfile.cpu
    # --service styleserve-cpu builds styleserve-cpu, not styleserve-cpu-cpu.
    image_name="${SERVICE%-cpu}-cpu"
  fi
  IMAGE="$REGION-docker.pkg.dev/$PROJECT/$ARTIFACT_REPO/$image_name:$IMAGE_TAG"
  local kind="L4 GPU"
  [[ "$CPU_ONLY" == 1 ]] && kind=CPU
  log "project $PROJECT, region $REGION, service $SERVICE ($kind), image $IMAGE"
  check_apis
  # Before the 10-minute build, not after it.
  [[ "$CPU_ONLY" == 1 ]] || check_gpu_quota "$MAX_INSTANCES" "$GPU_ZONAL_REDUNDANCY"
  check_models_bucket
  ensure_repo
  ensure_build_service_account
  ensure_service_account
  grant_models_bucket
  build_image
  deploy_service
  print_result
}

main "$@"
