# shellcheck shell=bash
# Helpers shared by deploy.sh, train.sh, teardown.sh and train_job.sh (sourced, not run).

# L4 regions on Cloud Run's "GPU support for services" page
# (https://cloud.google.com/run/docs/configuring/services/gpu, read 2026-12-03; infra/README.md
# says which copies of it were read): generally available, and by invitation only. A region in
# neither list only warns, since Google adds regions over time.
readonly L4_REGIONS="europe-west1 europe-west4 asia-southeast1 us-east4"
readonly L4_INVITATION_REGIONS="us-central1 asia-south1"
# The default region of every script: L4 generally available there in every copy of that page.
readonly DEFAULT_REGION="europe-west1"

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
  if [[ " $L4_REGIONS " == *" $REGION "* ]]; then
    return 0
  elif [[ " $L4_INVITATION_REGIONS " == *" $REGION "* ]]; then
    log "warning: Cloud Run L4 GPUs in $REGION are by invitation only (Cloud Run GPU page, read 2026-12-03): the deploy fails unless Google enabled them for this project. Generally available: $L4_REGIONS (e.g. --region $DEFAULT_REGION)."
  else
    log "warning: $REGION is not in the L4 regions known to this script ($L4_REGIONS; by invitation: $L4_INVITATION_REGIONS); the deploy fails if Cloud Run has no L4 GPUs there."
  fi
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

# Run a command that changes IAM, trying again with exponential backoff: a service account
# created seconds ago can be refused until it has propagated ("you might need to wait for 60
# seconds or more ... retry the request with exponential backoff",
# https://cloud.google.com/iam/docs/service-accounts-create). Tries after 5, 10, 20 and 40 s
# (RETRY_DELAY_S, the first wait), 75 s in all, then stops with the command that failed.
mutate_retry() {
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    mutate "$@"
    return 0
  fi
  local delay="${RETRY_DELAY_S:-5}" attempt
  for attempt in 1 2 3 4 5; do
    log "$(quote_cmd "$@")"
    "$@" && return 0
    ((attempt < 5)) || break
    log "failed (try $attempt of 5; a new identity can take a minute to propagate); trying again in ${delay}s"
    sleep "$delay"
    delay=$((delay * 2))
  done
  die "still failing after 5 tries: $(quote_cmd "$@")"
}

# The staging bucket gcloud builds submit uses by default, gs://PROJECT_cloudbuild (its name
# rules: ':' and '.' become '_', 'google' becomes 'elgoog').
build_bucket_name() {
  local name="${PROJECT//[:.]/_}"
  echo "${name//google/elgoog}_cloudbuild"
}

# The dedicated Cloud Build service account (BUILD_SERVICE_ACCOUNT; default
# ARTIFACT_REPO-build@PROJECT, created if missing) with only what a Dockerfile build that pushes
# to Artifact Registry needs, each on the narrowest resource gcloud can grant it on:
#   roles/artifactregistry.writer on the repository ARTIFACT_REPO (push the image),
#   roles/storage.objectUser on gs://PROJECT_cloudbuild (read the uploaded source, write the log),
#   roles/logging.logWriter on the project (the build's Cloud Logging entries).
# New projects run builds as the Compute Engine default service account, which often lacks
# these (https://cloud.google.com/build/docs/cloud-build-service-account-updates); a
# user-specified account needs its logs in a bucket of ours or in Cloud Logging
# (https://cloud.google.com/build/docs/securing-builds/configure-user-specified-service-accounts).
# Needs PROJECT, REGION, ARTIFACT_REPO, BUILD_SERVICE_ACCOUNT; sets BUILD_BUCKET.
ensure_build_service_account() {
  local default_sa="${ARTIFACT_REPO}-build@$PROJECT.iam.gserviceaccount.com" created=0
  BUILD_BUCKET="$(build_bucket_name)"
  if ! gcloud iam service-accounts describe "$BUILD_SERVICE_ACCOUNT" --project="$PROJECT" \
    --format='value(email)' >/dev/null 2>&1; then
    [[ "$BUILD_SERVICE_ACCOUNT" == "$default_sa" ]] ||
      die "build service account $BUILD_SERVICE_ACCOUNT not found in $PROJECT (create it, or leave --build-service-account out to get $default_sa)"
    mutate gcloud iam service-accounts create "${ARTIFACT_REPO}-build" --project="$PROJECT" \
      --display-name="$ARTIFACT_REPO Cloud Build (push to $ARTIFACT_REPO, read its sources)" --quiet
    created=1
  fi
  if ! gcloud storage buckets describe "gs://$BUILD_BUCKET" --project="$PROJECT" \
    --format='value(name)' >/dev/null 2>&1; then
    mutate gcloud storage buckets create "gs://$BUILD_BUCKET" --project="$PROJECT" \
      --location="$REGION" --uniform-bucket-level-access --quiet
  fi
  ((created)) && log "granting the new build service account its roles (retried while it propagates)"
  local member="serviceAccount:$BUILD_SERVICE_ACCOUNT"
  mutate_retry gcloud artifacts repositories add-iam-policy-binding "$ARTIFACT_REPO" \
    --location="$REGION" --project="$PROJECT" --member="$member" \
    --role=roles/artifactregistry.writer --quiet
  mutate_retry gcloud storage buckets add-iam-policy-binding "gs://$BUILD_BUCKET" \
    --member="$member" --role=roles/storage.objectUser --project="$PROJECT" --quiet
  mutate_retry gcloud projects add-iam-policy-binding "$PROJECT" --member="$member" \
    --role=roles/logging.logWriter --condition=None --quiet
}

# gcloud builds submit, run as the build service account, its source and log in BUILD_BUCKET.
# Args: the build context, then the remaining flags (--tag, --timeout, ...).
submit_build() {
  local context="$1"
  shift
  mutate gcloud builds submit "$context" "$@" --project="$PROJECT" \
    "--service-account=projects/$PROJECT/serviceAccounts/$BUILD_SERVICE_ACCOUNT" \
    "--gcs-source-staging-dir=gs://$BUILD_BUCKET/source" "--gcs-log-dir=gs://$BUILD_BUCKET/logs" \
    --quiet
}

# Before a 10-minute build: read the project's Cloud Run L4 quota in REGION through the Cloud
# Quotas API (gcloud beta quotas info list) and stop if it is below NEEDED (Args: NEEDED and
# ZONAL, 1 for the quota with zonal redundancy). Best effort where the API can't tell: the API
# not enabled, no permission (roles/cloudquotas.viewer), no python3, or no L4 entry found only
# warn, and the deploy goes on.
check_gpu_quota() {
  local needed="$1" zonal="$2" json verdict
  local kind="without zonal redundancy"
  [[ "$zonal" == 1 ]] && kind="with zonal redundancy"
  if ! json="$(gcloud beta quotas info list --service=run.googleapis.com --project="$PROJECT" \
    --format=json 2>/dev/null)"; then
    log "warning: could not read Cloud Run's GPU quota (the check needs the Cloud Quotas API: gcloud services enable cloudquotas.googleapis.com --project=$PROJECT, and roles/cloudquotas.viewer); going on without it"
    return 0
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    log "warning: python3 not found, so Cloud Run's GPU quota was not checked"
    return 0
  fi
  verdict="$(python3 -c '
import json, sys
region, zonal = sys.argv[1], sys.argv[2] == "1"
best = None
for info in json.loads(sys.stdin.read() or "[]"):
    name = " ".join(str(info.get(k, "")) for k in ("quotaDisplayName", "metricDisplayName", "quotaId")).lower()
    without = "without zonal" in name or "nozonal" in name
    if "l4" not in name or "zonal" not in name or without == zonal:
        continue
    for dim in info.get("dimensionsInfos", []):
        where = dim.get("dimensions", {}).get("region")
        value = dim.get("details", {}).get("value")
        if value is not None and where in (region, None) and (best is None or where == region):
            best = int(value)
print("unknown" if best is None else best)
' "$REGION" "$zonal" <<<"$json" 2>/dev/null || echo unknown)"
  if [[ "$verdict" == unknown ]]; then
    log "warning: no Cloud Run L4 quota entry ($kind) found for $REGION; going on (the console's Quotas page shows it)"
  elif ((verdict >= 0 && verdict < needed)); then
    die "Cloud Run L4 GPU quota ($kind) in $REGION is $verdict, and this needs $needed. Request more (console: IAM & Admin > Quotas, Cloud Run Admin API, 'L4'), or use a region where you have it."
  else
    log "Cloud Run L4 GPU quota ($kind) in $REGION: $verdict (needs $needed)"
  fi
}
