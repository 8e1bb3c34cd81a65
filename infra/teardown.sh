#!/usr/bin/env bash
# Delete what infra/deploy.sh created that costs money: the Cloud Run service (and, with
# --delete-images, the service's images in Artifact Registry, ~3 GB each for the GPU one; the
# training image infra/train.sh pushes to the same repository is kept unless --delete-repo).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=_common.sh
source "$SCRIPT_DIR/_common.sh"

SERVICE="${SERVICE:-styleserve}"
REGION="${REGION:-$DEFAULT_REGION}"
PROJECT="${PROJECT:-}"
ARTIFACT_REPO="${ARTIFACT_REPO:-styleserve}"
DELETE_IMAGES="${DELETE_IMAGES:-0}"
DELETE_REPO="${DELETE_REPO:-0}"
DRY_RUN="${DRY_RUN:-0}"

usage() {
  cat <<EOF
Usage: infra/teardown.sh [options]

Deletes the Cloud Run service deployed by infra/deploy.sh. Its images stay in Artifact
Registry (storage is billed per GB-month) unless --delete-images is given, which deletes this
service's images only (SERVICE and SERVICE-cpu); the repository and any other image in it (the
training image of infra/train.sh) stay unless --delete-repo. What stays is listed.

Options (env var in brackets, then default; use the values you deployed with):
  --project ID      [PROJECT]        GOOGLE_CLOUD_PROJECT, else 'gcloud config get-value project'
  --region REGION   [REGION]         $DEFAULT_REGION (use the region you deployed to)
  --service NAME    [SERVICE]        styleserve
  --repo NAME       [ARTIFACT_REPO]  styleserve
  --delete-images   [DELETE_IMAGES=1] also delete this service's images (SERVICE, SERVICE-cpu)
  --delete-repo     [DELETE_REPO=1]   also delete the whole repository, with every image in it
                                     (the training image too)
  --dry-run         [DRY_RUN=1]      print the commands that would delete something, run none
  -h, --help        this text
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --project) need_value "$@"; PROJECT="$2"; shift ;;
      --region) need_value "$@"; REGION="$2"; shift ;;
      --service) need_value "$@"; SERVICE="$2"; shift ;;
      --repo) need_value "$@"; ARTIFACT_REPO="$2"; shift ;;
      --delete-images) DELETE_IMAGES=1 ;;
      --delete-repo) DELETE_REPO=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
  done
}

main() {
  parse_args "$@"
  require_gcloud
  resolve_project
  local where=(--project="$PROJECT" --region="$REGION")
  if gcloud run services describe "$SERVICE" "${where[@]}" --format='value(metadata.name)' >/dev/null 2>&1; then
    mutate gcloud run services delete "$SERVICE" "${where[@]}" --quiet
  else
    log "no Cloud Run service $SERVICE in $PROJECT/$REGION; nothing to delete there"
  fi
  local repo_delete=(gcloud artifacts repositories delete "$ARTIFACT_REPO"
    --location="$REGION" --project="$PROJECT" --quiet)
  local where_repo=(--repository="$ARTIFACT_REPO" --location="$REGION" --project="$PROJECT")
  # The images in the repository, by name: deploy.sh pushes SERVICE (GPU) or SERVICE-cpu,
  # train.sh styleserve-train.
  local packages package mine=() others=()
  packages="$(gcloud artifacts packages list "${where_repo[@]}" --format='value(name)' 2>/dev/null || true)"
  for package in $packages; do
    package="${package##*/}"
    if [[ "$package" == "$SERVICE" || "$package" == "${SERVICE%-cpu}-cpu" ]]; then
      mine+=("$package")
    else
      others+=("$package")
    fi
  done
  if [[ "$DELETE_REPO" == 1 ]]; then
    ((${#others[@]} == 0)) || log "--delete-repo: deleting $ARTIFACT_REPO with every image in it, also ${others[*]}"
    mutate "${repo_delete[@]}"
  elif [[ "$DELETE_IMAGES" == 1 ]]; then
    ((${#mine[@]} > 0)) || log "no image of $SERVICE in $ARTIFACT_REPO ($REGION); nothing to delete there"
    for package in "${mine[@]}"; do
      mutate gcloud artifacts packages delete "$package" "${where_repo[@]}" --quiet
    done
  fi
  cat <<EOF

Left in place:
EOF
  if [[ "$DELETE_REPO" != 1 ]]; then
    local kept=("${others[@]}")
    [[ "$DELETE_IMAGES" == 1 ]] || kept=("${mine[@]}" "${others[@]}")
    cat <<EOF
  - Artifact Registry repository $ARTIFACT_REPO ($REGION), images: ${kept[*]:-none found}; billed
    per GB-month beyond the free tier. --delete-images deletes this service's images;
    --delete-repo deletes the repository with every image in it (the training image too):
      $(quote_cmd "${repo_delete[@]}")
EOF
  fi
  cat <<EOF
  - Uploaded build sources in gs://${PROJECT}_cloudbuild/source (small). Delete with:
      gcloud storage rm --recursive gs://${PROJECT}_cloudbuild/source
  - The service's runtime service account ${SERVICE}-run@${PROJECT}.iam.gserviceaccount.com and
    the build service account ${ARTIFACT_REPO}-build@${PROJECT}.iam.gserviceaccount.com (free).
  - Anything infra/train.sh made: the Cloud Run job (no charge while it does not run), its
    service account, and your bucket with paintings, photos, checkpoints and trained models
    (billed per GB-month). Delete them with:
      gcloud run jobs delete styleserve-train --region=$REGION --project=$PROJECT --quiet
      gcloud storage rm --recursive gs://BUCKET
  - The enabled APIs and Cloud Build / Cloud Run logs (no charge while nothing runs).
  - The project itself: 'gcloud projects delete $PROJECT' removes everything.
EOF
}

main "$@"
