# shellcheck shell=bash
# Helpers shared by deploy.sh and teardown.sh (sourced, not run).

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
