# shellcheck shell=bash
# Helpers shared by deploy.sh, train.sh, teardown.sh and train_job.sh (sourced, not run).

# L4 regions listed on Cloud Run's "GPU support for services" page; others only warn, since
# Google adds regions over time.
readonly L4_REGIONS="us-central1 us-east4 europe-west1 europe-west4 asia-southeast1 asia-south1"

die() {
  echo "${0##*/}: error: $*" >&2
  exit 1
}

log() { echo "==> $*" >&2; }

# Print a command so that it can be pasted into a shell: plain words stay bare, anything
# else is single-quoted.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  echo "${out% }"
}

# Run a command that changes something, or only print it under --dry-run. Read-only
# look-ups call gcloud directly, so a dry run still shows real state.
mutate() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    echo "+ $(quote_cmd "$@")"
  else
    log "$(quote_cmd "$@")"
    "$@"
  fi
}

require_gcloud() {
  command -v gcloud >/dev/null 2>&1 ||
    die "gcloud not found on PATH. Install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then run 'gcloud auth login'."
}

# PROJECT from --project/env, else GOOGLE_CLOUD_PROJECT, else gcloud's configured project.
resolve_project() {
  if [[ -z "${PROJECT:-}" ]]; then
    PROJECT="${GOOGLE_CLOUD_PROJECT:-}"
  fi
  if [[ -z "$PROJECT" ]]; then
    PROJECT="$(gcloud config get-value project 2>/dev/null || true)"
  fi
  [[ -n "$PROJECT" && "$PROJECT" != "(unset)" ]] ||
    die "no Google Cloud project set. Pass --project ID, set PROJECT=ID, or run 'gcloud config set project ID'."
}

check_region() {
  [[ " $L4_REGIONS " == *" $REGION "* ]] ||
    log "warning: $REGION is not in the L4 regions known to this script ($L4_REGIONS); the deploy fails if Cloud Run has no L4 GPUs there."
}

# A flag that takes a value got one.
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"; }

# Needs REQUIRED_APIS, PROJECT, ENABLE_APIS, DRY_RUN.
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

# Read the digest of IMAGE (a tag just pushed) into IMAGE_REF, REPO/NAME@sha256:..., so a
# deploy runs exactly that build even if the tag moves.
resolve_digest() {
  local digest
  digest="$(gcloud artifacts docker images describe "$IMAGE" --project="$PROJECT" \
    --format='value(image_summary.digest)' 2>/dev/null || true)"
  if [[ "$digest" != sha256:* ]]; then
    [[ "${DRY_RUN:-0}" == 1 ]] || die "built $IMAGE, but could not read its digest"
    digest="sha256:DIGEST"
  fi
  # shellcheck disable=SC2034  # read by the sourcing script
  IMAGE_REF="${IMAGE%:*}@$digest"
}
