#!/usr/bin/env bash
# Deploy function/ to Azure Container Apps on a serverless GPU (a consumption GPU workload
# profile: NVIDIA T4 by default, --gpu-type a100), or on CPUs (--cpu-only), scaling to zero:
# resource group, Azure Container Registry build, Container Apps environment with the GPU
# profile, the app behind Microsoft Entra ID authentication, an optional smoke test; --teardown
# deletes it all again. The same images as Cloud Run (infra/Dockerfile, infra/Dockerfile.cpu).
#
# The limits that shape it (infra/README.md cites the pages): Container Apps' HTTP ingress times
# a request out after 240 s, so VIDEO_DEADLINE_S is set under it; a GPU replica can take up to
# about 5 minutes to start from zero; serverless GPUs need a GPU quota granted by a support
# request first, in the regions that offer them.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
# die, log, quote_cmd, mutate, mutate_retry, need_value (the gcloud helpers there go unused).
# shellcheck source-path=SCRIPTDIR source=../_common.sh
source "$SCRIPT_DIR/../_common.sh"

# Defaults; every one can be set by flag or by the env var of the same name.
RESOURCE_GROUP="${RESOURCE_GROUP:-styleserve}"
LOCATION="${LOCATION:-swedencentral}"
ACR_NAME="${ACR_NAME:-}"
ENVIRONMENT="${ENVIRONMENT:-styleserve-env}"
APP="${APP:-styleserve}"
GPU_TYPE="${GPU_TYPE:-t4}"
CPU_ONLY="${CPU_ONLY:-0}"
CPU="${CPU:-}"
MEMORY="${MEMORY:-}"
CONCURRENCY="${CONCURRENCY:-4}"
MIN_REPLICAS="${MIN_REPLICAS:-0}"
MAX_REPLICAS="${MAX_REPLICAS:-1}"
VIDEO_DEADLINE_S="${VIDEO_DEADLINE_S:-200}"
PUBLIC="${PUBLIC:-0}"
DEFAULT_STYLE="${DEFAULT_STYLE:-}"
FUNCTION_DIR="${FUNCTION_DIR:-$REPO_ROOT/function}"
IMAGE_TAG="${IMAGE_TAG:-$(date -u +%Y%m%d-%H%M%S)}"
SMOKE="${SMOKE:-0}"
TEARDOWN="${TEARDOWN:-0}"
DRY_RUN="${DRY_RUN:-0}"
EXTRA_ENV=()

# Container Apps' request timeout at its HTTP ingress, in seconds.
readonly INGRESS_TIMEOUT_S=240

usage() {
  cat <<EOF
Usage: infra/azure/deploy.sh [options]

Deploys the style transfer function to Azure Container Apps with a serverless GPU (a
Consumption GPU workload profile, NVIDIA T4 by default), scaling to zero when idle:
  1. resource group RESOURCE_GROUP in LOCATION (created if missing)
  2. Azure Container Registry ACR_NAME (Basic, created if missing); 'az acr build' builds
     infra/Dockerfile (--cpu-only: infra/Dockerfile.cpu) there, no local Docker needed
  3. Container Apps environment ENVIRONMENT with the GPU workload profile
  4. the app APP from the image's digest, pulled with a managed identity that has AcrPull on the
     registry only; HTTP scale rule (CONCURRENCY requests per replica), MIN..MAX replicas
  5. Microsoft Entra ID authentication in front of it (an app registration APP, single tenant;
     callers send an Entra access token for api://APP_ID), unless --public
  6. --smoke: infra/smoke_test.sh against it
--teardown deletes the resource group (app, environment, registry, identity) and the app
registration.

Limits: requests time out at Container Apps' ingress after ${INGRESS_TIMEOUT_S} s (the function
gets VIDEO_DEADLINE_S=$VIDEO_DEADLINE_S, under it); a GPU replica can take up to ~5 minutes to start
from zero; serverless GPUs need GPU quota, asked for with an Azure support request, in a region
that offers them (infra/README.md).

Options (env var in brackets, then default):
  --resource-group NAME [RESOURCE_GROUP] styleserve
  --location REGION     [LOCATION]       swedencentral (a region with serverless GPUs)
  --acr NAME            [ACR_NAME]       styleserve + the subscription id's first 8 hex digits
                                         (globally unique, 5-50 letters and digits)
  --environment NAME    [ENVIRONMENT]    styleserve-env
  --app NAME            [APP]            styleserve
  --gpu-type TYPE       [GPU_TYPE]       t4 (Consumption-GPU-NC8as-T4: 8 vCPU, 56 GiB) | a100
                                         (Consumption-GPU-NC24-A100: 24 vCPU, 220 GiB)
  --cpu-only            [CPU_ONLY=1]     no GPU: the Consumption profile, infra/Dockerfile.cpu
  --cpu N               [CPU]            t4: 8 | a100: 24 | --cpu-only: 2
  --memory SIZE         [MEMORY]         t4: 56Gi | a100: 220Gi | --cpu-only: 4Gi
  --concurrency N       [CONCURRENCY]    4 (HTTP scale rule: requests per replica; also THREADS)
  --min-replicas N      [MIN_REPLICAS]   0 (scale to zero)
  --max-replicas N      [MAX_REPLICAS]   1 (each GPU replica uses GPU quota)
  --video-deadline S    [VIDEO_DEADLINE_S] 200 (under the ${INGRESS_TIMEOUT_S} s ingress timeout)
  --public              [PUBLIC=1]       no authentication (anyone with the URL can call it)
  --default-style NAME  [DEFAULT_STYLE]  passed to the function as DEFAULT_STYLE
  --env KEY=VALUE       extra env var for the function (repeatable)
  --function-dir DIR    [FUNCTION_DIR]   function/
  --image-tag TAG       [IMAGE_TAG]      UTC timestamp
  --smoke               [SMOKE=1]        run infra/smoke_test.sh against the app
  --teardown            [TEARDOWN=1]     delete the resource group and the app registration
  --dry-run             [DRY_RUN=1]      print every command that would change something, run none
  -h, --help            this text

Needs: az (the Azure CLI, logged in: az login), a subscription where you may create resource
groups, role assignments (Owner, or Contributor + User Access Administrator) and Entra app
registrations; GPU quota for serverless GPUs in LOCATION; python3 with Pillow for --smoke.
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --resource-group) need_value "$@"; RESOURCE_GROUP="$2"; shift ;;
      --location) need_value "$@"; LOCATION="$2"; shift ;;
      --acr) need_value "$@"; ACR_NAME="$2"; shift ;;
      --environment) need_value "$@"; ENVIRONMENT="$2"; shift ;;
      --app) need_value "$@"; APP="$2"; shift ;;
      --gpu-type) need_value "$@"; GPU_TYPE="$2"; shift ;;
      --cpu-only) CPU_ONLY=1 ;;
      --cpu) need_value "$@"; CPU="$2"; shift ;;
      --memory) need_value "$@"; MEMORY="$2"; shift ;;
      --concurrency) need_value "$@"; CONCURRENCY="$2"; shift ;;
      --min-replicas) need_value "$@"; MIN_REPLICAS="$2"; shift ;;
      --max-replicas) need_value "$@"; MAX_REPLICAS="$2"; shift ;;
      --video-deadline) need_value "$@"; VIDEO_DEADLINE_S="$2"; shift ;;
      --public) PUBLIC=1 ;;
      --default-style) need_value "$@"; DEFAULT_STYLE="$2"; shift ;;
      --env) need_value "$@"; EXTRA_ENV+=("$2"); shift ;;
      --function-dir) need_value "$@"; FUNCTION_DIR="$2"; shift ;;
      --image-tag) need_value "$@"; IMAGE_TAG="$2"; shift ;;
      --smoke) SMOKE=1 ;;
      --teardown) TEARDOWN=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
  done
}

require_az() {
  command -v az >/dev/null 2>&1 ||
    die "az not found on PATH. Install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli), then run 'az login'."
  SUBSCRIPTION="$(az account show --query id -o tsv 2>/dev/null || true)"
  TENANT="$(az account show --query tenantId -o tsv 2>/dev/null || true)"
  [[ -n "$SUBSCRIPTION" && -n "$TENANT" ]] ||
    die "no Azure subscription selected. Run 'az login' (and 'az account set --subscription ID')."
}

validate() {
  local n
  case "$GPU_TYPE" in
    t4) PROFILE_TYPE=Consumption-GPU-NC8as-T4 PROFILE=gpu-t4 ;;
    a100) PROFILE_TYPE=Consumption-GPU-NC24-A100 PROFILE=gpu-a100 ;;
    *) die "--gpu-type must be t4 or a100 (got '$GPU_TYPE')" ;;
  esac
  if [[ "$CPU_ONLY" == 1 ]]; then
    PROFILE=Consumption PROFILE_TYPE=""
    : "${CPU:=2}" "${MEMORY:=4Gi}"
  elif [[ "$GPU_TYPE" == t4 ]]; then
    : "${CPU:=8}" "${MEMORY:=56Gi}"
  else
    : "${CPU:=24}" "${MEMORY:=220Gi}"
  fi
  for n in CONCURRENCY MIN_REPLICAS MAX_REPLICAS VIDEO_DEADLINE_S; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
  done
  [[ "$CPU" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "CPU must be a number of vCPUs, e.g. 8 (got '$CPU')"
  [[ "$MEMORY" =~ ^[0-9]+(\.[0-9]+)?Gi$ ]] || die "MEMORY must be in Gi, e.g. 56Gi (got '$MEMORY')"
  ((CONCURRENCY >= 1)) || die "CONCURRENCY must be at least 1"
  ((MAX_REPLICAS >= 1)) || die "MAX_REPLICAS must be at least 1"
  ((MIN_REPLICAS <= MAX_REPLICAS)) || die "MIN_REPLICAS ($MIN_REPLICAS) exceeds MAX_REPLICAS ($MAX_REPLICAS)"
  ((VIDEO_DEADLINE_S >= 1 && VIDEO_DEADLINE_S < INGRESS_TIMEOUT_S)) ||
    die "--video-deadline must be under Container Apps' ${INGRESS_TIMEOUT_S} s request timeout (got $VIDEO_DEADLINE_S)"
  [[ "$APP" =~ ^[a-z][a-z0-9-]{0,30}[a-z0-9]$ ]] ||
    die "--app wants 2-32 lowercase letters, digits and '-' (got '$APP')"
  if [[ -z "$ACR_NAME" ]]; then
    ACR_NAME="styleserve${SUBSCRIPTION//-/}"
    ACR_NAME="${ACR_NAME:0:18}"
  fi
  [[ "$ACR_NAME" =~ ^[a-zA-Z0-9]{5,50}$ ]] ||
    die "--acr wants 5-50 letters and digits, unique across Azure (got '$ACR_NAME')"
  for n in "${EXTRA_ENV[@]}"; do
    [[ "$n" =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ ]] || die "--env wants KEY=VALUE, got '$n'"
  done
  [[ -f "$FUNCTION_DIR/main.py" ]] || die "$FUNCTION_DIR must contain main.py"
}

# Run a creating command and print what it prints (an id), or under --dry-run print it and
# answer PLACEHOLDER.
mutate_value() {
  local placeholder="$1"
  shift
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "+ $(quote_cmd "$@")" >&2
    echo "$placeholder"
  else
    log "$(quote_cmd "$@")"
    "$@"
  fi
}

ensure_providers() {
  local ns state
  for ns in Microsoft.App Microsoft.OperationalInsights Microsoft.ContainerRegistry; do
    state="$(az provider show --namespace "$ns" --query registrationState -o tsv 2>/dev/null || true)"
    [[ "$state" == Registered ]] || mutate az provider register --namespace "$ns" --wait
  done
}

ensure_group() {
  [[ "$(az group exists --name "$RESOURCE_GROUP" 2>/dev/null || true)" == true ]] && return 0
  mutate az group create --name "$RESOURCE_GROUP" --location "$LOCATION"
}

ensure_registry() {
  az acr show --name "$ACR_NAME" --resource-group "$RESOURCE_GROUP" --query id -o tsv \
    >/dev/null 2>&1 && return 0
  mutate az acr create --name "$ACR_NAME" --resource-group "$RESOURCE_GROUP" \
    --location "$LOCATION" --sku Basic
}

stage_context() {
  mkdir -p "$1/function"
  tar -C "$FUNCTION_DIR" --exclude=__pycache__ --exclude='*.pyc' --exclude=.venv -cf - . |
    tar -C "$1/function" -xf -
  cp "$REPO_ROOT/infra/$DOCKERFILE" "$1/Dockerfile"
}

# Build in the registry (ACR Tasks), then read the digest: the app runs exactly this build.
build_image() {
  local context digest
  if [[ "$DRY_RUN" == 1 ]]; then
    context="BUILD_CONTEXT"
    echo "# BUILD_CONTEXT: a temporary directory holding $FUNCTION_DIR as function/ plus infra/$DOCKERFILE as Dockerfile"
  else
    context="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$context'" EXIT
    stage_context "$context"
  fi
  mutate az acr build --registry "$ACR_NAME" --image "$IMAGE_NAME:$IMAGE_TAG" \
    --file Dockerfile --platform linux/amd64 "$context"
  digest="$(az acr repository show --name "$ACR_NAME" --image "$IMAGE_NAME:$IMAGE_TAG" \
    --query digest -o tsv 2>/dev/null || true)"
  if [[ "$digest" != sha256:* ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "built $IMAGE_NAME:$IMAGE_TAG in $ACR_NAME, but could not read its digest"
    digest="sha256:DIGEST"
  fi
  IMAGE_REF="$ACR_NAME.azurecr.io/$IMAGE_NAME@$digest"
}

ensure_environment() {
  if ! az containerapp env show --name "$ENVIRONMENT" --resource-group "$RESOURCE_GROUP" \
    --query id -o tsv >/dev/null 2>&1; then
    mutate az containerapp env create --name "$ENVIRONMENT" --resource-group "$RESOURCE_GROUP" \
      --location "$LOCATION"
  fi
  [[ "$CPU_ONLY" == 1 ]] && return 0
  local profiles
  profiles="$(az containerapp env workload-profile list --name "$ENVIRONMENT" \
    --resource-group "$RESOURCE_GROUP" --query '[].name' -o tsv 2>/dev/null || true)"
  grep -qx "$PROFILE" <<<"$profiles" && return 0
  mutate az containerapp env workload-profile add --name "$ENVIRONMENT" \
    --resource-group "$RESOURCE_GROUP" --workload-profile-name "$PROFILE" \
    --workload-profile-type "$PROFILE_TYPE"
}

# A user-assigned identity that may pull from this registry and nothing else; the app pulls with
# it (--registry-identity wants the AcrPull grant to exist before the app is created).
ensure_pull_identity() {
  local name="$APP-pull" principal acr_id
  if ! az identity show --name "$name" --resource-group "$RESOURCE_GROUP" --query id -o tsv \
    >/dev/null 2>&1; then
    mutate az identity create --name "$name" --resource-group "$RESOURCE_GROUP" --location "$LOCATION"
  fi
  IDENTITY_ID="$(az identity show --name "$name" --resource-group "$RESOURCE_GROUP" --query id -o tsv 2>/dev/null || true)"
  principal="$(az identity show --name "$name" --resource-group "$RESOURCE_GROUP" --query principalId -o tsv 2>/dev/null || true)"
  acr_id="$(az acr show --name "$ACR_NAME" --resource-group "$RESOURCE_GROUP" --query id -o tsv 2>/dev/null || true)"
  if [[ -z "$IDENTITY_ID" || -z "$principal" || -z "$acr_id" ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "could not read the identity $name or the registry $ACR_NAME"
    IDENTITY_ID="${IDENTITY_ID:-IDENTITY_ID}" principal="${principal:-PRINCIPAL_ID}" acr_id="${acr_id:-ACR_ID}"
  fi
  # Retried: a new identity's principal can take a minute to reach Microsoft Entra ID.
  mutate_retry az role assignment create --assignee-object-id "$principal" \
    --assignee-principal-type ServicePrincipal --role AcrPull --scope "$acr_id"
}

deploy_app() {
  local env_vars=("THREADS=$CONCURRENCY" "VIDEO_DEADLINE_S=$VIDEO_DEADLINE_S")
  if [[ "$CPU_ONLY" == 1 ]]; then
    env_vars+=("DEFAULT_ARCH=fast")
  else
    env_vars+=("REQUIRE_GPU=1")
  fi
  [[ -n "$DEFAULT_STYLE" ]] && env_vars+=("DEFAULT_STYLE=$DEFAULT_STYLE")
  env_vars+=("${EXTRA_ENV[@]}")
  local scale=(--min-replicas "$MIN_REPLICAS" --max-replicas "$MAX_REPLICAS"
    --scale-rule-name http-requests --scale-rule-type http
    --scale-rule-http-concurrency "$CONCURRENCY")
  local where=(--name "$APP" --resource-group "$RESOURCE_GROUP")
  if az containerapp show "${where[@]}" --query id -o tsv >/dev/null 2>&1; then
    mutate az containerapp update "${where[@]}" --image "$IMAGE_REF" \
      --workload-profile-name "$PROFILE" --cpu "$CPU" --memory "$MEMORY" "${scale[@]}" \
      --set-env-vars "${env_vars[@]}"
  else
    mutate az containerapp create "${where[@]}" --environment "$ENVIRONMENT" \
      --workload-profile-name "$PROFILE" --image "$IMAGE_REF" \
      --registry-server "$ACR_NAME.azurecr.io" --registry-identity "$IDENTITY_ID" \
      --user-assigned "$IDENTITY_ID" --ingress external --target-port 8080 \
      --cpu "$CPU" --memory "$MEMORY" "${scale[@]}" --env-vars "${env_vars[@]}"
  fi
}

# Microsoft Entra ID in front of the app (Container Apps' built-in authentication): an app
# registration in this tenant, its api://APP_ID audience, and 401 for a call without a token.
ensure_auth() {
  AUTH_APP_ID=""
  [[ "$PUBLIC" == 1 ]] && return 0
  AUTH_APP_ID="$(az ad app list --display-name "$APP" --query '[0].appId' -o tsv 2>/dev/null || true)"
  if [[ -z "$AUTH_APP_ID" ]]; then
    AUTH_APP_ID="$(mutate_value APP_ID az ad app create --display-name "$APP" \
      --sign-in-audience AzureADMyOrg --query appId -o tsv)"
    mutate_retry az ad app update --id "$AUTH_APP_ID" --identifier-uris "api://$AUTH_APP_ID"
  fi
  local where=(--name "$APP" --resource-group "$RESOURCE_GROUP")
  mutate az containerapp auth microsoft update "${where[@]}" --client-id "$AUTH_APP_ID" \
    --tenant-id "$TENANT" --allowed-audiences "api://$AUTH_APP_ID" --yes
  mutate az containerapp auth update "${where[@]}" --enabled true \
    --unauthenticated-client-action Return401 --yes
}

print_result() {
  local fqdn url token_cmd="" auth_header="" token_arg=""
  fqdn="$(az containerapp show --name "$APP" --resource-group "$RESOURCE_GROUP" \
    --query properties.configuration.ingress.fqdn -o tsv 2>/dev/null || true)"
  if [[ -z "$fqdn" ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "deployed, but could not read the address of $APP"
    fqdn="APP-FQDN"
  fi
  url="https://$fqdn"
  if [[ "$PUBLIC" != 1 ]]; then
    token_cmd="az account get-access-token --resource api://$AUTH_APP_ID --query accessToken -o tsv"
    auth_header=" -H \"Authorization: Bearer \$($token_cmd)\""
    token_arg=" --token \"\$($token_cmd)\""
  fi
  echo
  echo "App URL: $url"
  echo "The first request after an idle spell starts a replica: up to ~5 minutes on a GPU."
  echo "Stylize a picture:"
  echo "  curl -sS --max-time $INGRESS_TIMEOUT_S -X POST \"$url/\"$auth_header -F image=@infra/smoke.jpg -F format=png -o stylized.png"
  echo "Smoke test:"
  echo "  infra/smoke_test.sh $url --timeout 360$token_arg"
  echo "Tear down: infra/azure/deploy.sh --teardown --resource-group $RESOURCE_GROUP --app $APP"
  if [[ "$SMOKE" == 1 ]]; then
    local smoke=("$REPO_ROOT/infra/smoke_test.sh" "$url" --timeout 360)
    [[ "$CPU_ONLY" == 1 ]] || smoke+=(--expect-gpu)
    if [[ "$DRY_RUN" == 1 ]]; then
      echo "+ $(quote_cmd "${smoke[@]}")$token_arg"
    else
      [[ "$PUBLIC" == 1 ]] || smoke+=(--token "$(az account get-access-token --resource "api://$AUTH_APP_ID" --query accessToken -o tsv)")
      "${smoke[@]}"
    fi
  fi
}

teardown() {
  local app_id
  if [[ "$(az group exists --name "$RESOURCE_GROUP" 2>/dev/null || true)" == true ]]; then
    mutate az group delete --name "$RESOURCE_GROUP" --yes --no-wait
  else
    log "no resource group $RESOURCE_GROUP; nothing to delete there"
  fi
  app_id="$(az ad app list --display-name "$APP" --query '[0].appId' -o tsv 2>/dev/null || true)"
  if [[ -n "$app_id" ]]; then
    mutate az ad app delete --id "$app_id"
  fi
  echo "Deleting $RESOURCE_GROUP runs in the background: az group show --name $RESOURCE_GROUP"
}

main() {
  parse_args "$@"
  require_az
  if [[ "$TEARDOWN" == 1 ]]; then
    teardown
    return 0
  fi
  validate
  DOCKERFILE=Dockerfile IMAGE_NAME="$APP"
  if [[ "$CPU_ONLY" == 1 ]]; then
    DOCKERFILE=Dockerfile.cpu IMAGE_NAME="${APP%-cpu}-cpu"
  fi
  local kind="serverless GPU $PROFILE_TYPE"
  [[ "$CPU_ONLY" == 1 ]] && kind="CPU (Consumption profile)"
  log "subscription $SUBSCRIPTION, resource group $RESOURCE_GROUP ($LOCATION), app $APP on $kind, registry $ACR_NAME"
  ensure_providers
  ensure_group
  ensure_registry
  build_image
  ensure_environment
  ensure_pull_identity
  deploy_app
  ensure_auth
  print_result
}

main "$@"
