#!/usr/bin/env bash
# Deploy function/ to AWS Lambda as a container image behind a function URL, on CPUs (AWS has no
# serverless GPU behind an HTTP endpoint; infra/README.md describes SageMaker asynchronous
# inference as the GPU route). The image is infra/Dockerfile.cpu plus the AWS Lambda Web Adapter
# (infra/aws/Dockerfile.lambda), so the function runs unchanged under gunicorn.
#
# The limit that shapes it: Lambda takes at most 6 MB (6,291,456 bytes) of request payload, and a
# function URL hands binary bodies to the function base64-encoded, so a raw photo, video or
# multipart upload can be about 4.5 MB. The function gets MAX_REQUEST_BYTES just under that and
# answers its own JSON 413 (payload_too_large) above it; a body whose payload exceeds 6 MB is
# refused by AWS before the function sees it (infra/README.md says what the client gets then).
# Responses stream (function URL invoke mode RESPONSE_STREAM), which lifts their limit from 6 MB
# to 200 MB.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
# die, log, quote_cmd, mutate, mutate_retry, need_value (the gcloud helpers there go unused).
# shellcheck source-path=SCRIPTDIR source=../_common.sh
source "$SCRIPT_DIR/../_common.sh"

# Lambda's synchronous invocation payload limit (Lambda quotas page), and what the function URL's
# event spends of it besides the body: headers, request context, JSON. 64 KiB is generous.
readonly LAMBDA_PAYLOAD_BYTES=6291456
readonly ENVELOPE_BYTES=65536
# Base64 makes 4 bytes of every 3: the largest binary body whose event still fits.
readonly LAMBDA_MAX_BODY_BYTES=$(((LAMBDA_PAYLOAD_BYTES - ENVELOPE_BYTES) * 3 / 4))
readonly LAMBDA_MAX_TIMEOUT_S=900
readonly BASIC_EXECUTION_POLICY=arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole

# Defaults; every one can be set by flag or by the env var of the same name.
FUNCTION="${FUNCTION:-styleserve}"
AWS_REGION="${AWS_REGION:-}"
ECR_REPO="${ECR_REPO:-styleserve}"
MEMORY_MB="${MEMORY_MB:-4096}"
TIMEOUT_S="${TIMEOUT_S:-300}"
MAX_REQUEST_BYTES="${MAX_REQUEST_BYTES:-$LAMBDA_MAX_BODY_BYTES}"
PUBLIC="${PUBLIC:-0}"
DEFAULT_STYLE="${DEFAULT_STYLE:-}"
IMAGE_TAG="${IMAGE_TAG:-$(date -u +%Y%m%d-%H%M%S)}"
SMOKE="${SMOKE:-0}"
TEARDOWN="${TEARDOWN:-0}"
DRY_RUN="${DRY_RUN:-0}"
EXTRA_ENV=()

usage() {
  cat <<EOF
Usage: infra/aws/deploy.sh [options]

Deploys the style transfer function to AWS Lambda on CPUs, as a container image with a function
URL:
  1. ECR repository ECR_REPO (created if missing, scan on push)
  2. docker buildx builds infra/Dockerfile.cpu, then infra/aws/Dockerfile.lambda on top of it
     (the AWS Lambda Web Adapter) for linux/amd64 with --provenance=false (Lambda takes a
     single-platform image manifest, not an image index), and pushes it
  3. an execution role FUNCTION-role (created if missing) with AWSLambdaBasicExecutionRole only
     (its logs); the function FUNCTION from the image's digest, MEMORY_MB, TIMEOUT_S
  4. a function URL, AWS_IAM auth by default (callers sign requests with SigV4 and need
     lambda:InvokeFunctionUrl and lambda:InvokeFunction), --public for none; invoke mode
     RESPONSE_STREAM (responses up to 200 MB instead of 6 MB)
  5. --smoke (with --public): infra/smoke_test.sh against it
--teardown deletes the function (and its URL), the role and the repository.

Limits: requests are at most 6 MB of Lambda payload; binary bodies arrive base64-encoded, so
the function takes MAX_REQUEST_BYTES=$LAMBDA_MAX_BODY_BYTES (~4.5 MB) and answers its JSON 413
above it. Lambda runs one request per instance, at most ${LAMBDA_MAX_TIMEOUT_S} s; CPU grows with memory
(1,769 MB = 1 vCPU, 10,240 MB = 6 vCPUs). No GPU.

Options (env var in brackets, then default):
  --region REGION       [AWS_REGION]    'aws configure get region'
  --function NAME       [FUNCTION]      styleserve
  --repo NAME           [ECR_REPO]      styleserve
  --memory-mb N         [MEMORY_MB]     4096 (128..10240; ~2.3 vCPUs)
  --timeout S           [TIMEOUT_S]     300 (1..${LAMBDA_MAX_TIMEOUT_S}; VIDEO_DEADLINE_S, 240, stays under it)
  --max-request-bytes N [MAX_REQUEST_BYTES] $LAMBDA_MAX_BODY_BYTES (at most that: what fits Lambda's payload)
  --public              [PUBLIC=1]      function URL without authentication (anyone can call it)
  --default-style NAME  [DEFAULT_STYLE] passed to the function as DEFAULT_STYLE
  --env KEY=VALUE       extra env var for the function (repeatable; no '"' or '\\')
  --image-tag TAG       [IMAGE_TAG]     UTC timestamp
  --smoke               [SMOKE=1]       run infra/smoke_test.sh against the URL (needs --public)
  --teardown            [TEARDOWN=1]    delete the function, its role and the repository
  --dry-run             [DRY_RUN=1]     print every command that would change something, run none
  -h, --help            this text

Needs: aws (AWS CLI v2, credentials configured), docker with buildx; IAM permissions to manage
ECR, Lambda and IAM roles (infra/README.md); python3 with Pillow for --smoke.
EOF
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --region) need_value "$@"; AWS_REGION="$2"; shift ;;
      --function) need_value "$@"; FUNCTION="$2"; shift ;;
      --repo) need_value "$@"; ECR_REPO="$2"; shift ;;
      --memory-mb) need_value "$@"; MEMORY_MB="$2"; shift ;;
      --timeout) need_value "$@"; TIMEOUT_S="$2"; shift ;;
      --max-request-bytes) need_value "$@"; MAX_REQUEST_BYTES="$2"; shift ;;
      --public) PUBLIC=1 ;;
      --default-style) need_value "$@"; DEFAULT_STYLE="$2"; shift ;;
      --env) need_value "$@"; EXTRA_ENV+=("$2"); shift ;;
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

require_aws() {
  command -v aws >/dev/null 2>&1 ||
    die "aws not found on PATH. Install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html), then 'aws configure'."
  [[ -n "$AWS_REGION" ]] || AWS_REGION="$(aws configure get region 2>/dev/null || true)"
  [[ -n "$AWS_REGION" ]] || die "no AWS region set. Pass --region REGION, set AWS_REGION, or run 'aws configure set region REGION'."
  ACCOUNT="$(aws sts get-caller-identity --query Account --output text 2>/dev/null || true)"
  [[ "$ACCOUNT" =~ ^[0-9]{12}$ ]] ||
    die "could not read the AWS account (credentials configured? 'aws sts get-caller-identity')"
  AWS=(aws --region "$AWS_REGION")
}

validate() {
  local n
  for n in MEMORY_MB TIMEOUT_S MAX_REQUEST_BYTES; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
  done
  ((MEMORY_MB >= 128 && MEMORY_MB <= 10240)) || die "--memory-mb must be 128..10240 (got $MEMORY_MB)"
  ((TIMEOUT_S >= 1 && TIMEOUT_S <= LAMBDA_MAX_TIMEOUT_S)) ||
    die "--timeout must be 1..$LAMBDA_MAX_TIMEOUT_S seconds (got $TIMEOUT_S)"
  ((MAX_REQUEST_BYTES >= 1 && MAX_REQUEST_BYTES <= LAMBDA_MAX_BODY_BYTES)) ||
    die "--max-request-bytes may be at most $LAMBDA_MAX_BODY_BYTES: Lambda refuses larger base64-encoded bodies before the function sees them (got $MAX_REQUEST_BYTES)"
  [[ "$FUNCTION" =~ ^[A-Za-z0-9_-]{1,55}$ ]] || die "--function wants up to 55 letters, digits, '-' and '_' (got '$FUNCTION')"
  [[ "$ECR_REPO" =~ ^[a-z0-9][a-z0-9._/-]{1,255}$ ]] || die "--repo wants a lowercase ECR repository name (got '$ECR_REPO')"
  for n in "${EXTRA_ENV[@]}"; do
    [[ "$n" =~ ^[A-Za-z_][A-Za-z0-9_]*=[^\"\\]*$ ]] || die "--env wants KEY=VALUE without '\"' or '\\', got '$n'"
    [[ "$n" != MAX_REQUEST_BYTES=* ]] || die "use --max-request-bytes, which is checked against Lambda's limit"
  done
  if [[ "$SMOKE" == 1 && "$PUBLIC" != 1 ]]; then
    die "--smoke needs --public: infra/smoke_test.sh cannot sign requests with SigV4 (the curl line printed at the end can)"
  fi
  [[ -f "$REPO_ROOT/function/main.py" ]] || die "function/main.py not found in $REPO_ROOT"
}

ensure_repo() {
  "${AWS[@]}" ecr describe-repositories --repository-names "$ECR_REPO" --output text \
    >/dev/null 2>&1 && return 0
  mutate "${AWS[@]}" ecr create-repository --repository-name "$ECR_REPO" \
    --image-scanning-configuration scanOnPush=true
}

build_and_push() {
  local registry="$ACCOUNT.dkr.ecr.$AWS_REGION.amazonaws.com" digest
  local base="styleserve-lambda-base:$IMAGE_TAG"
  IMAGE="$registry/$ECR_REPO:$IMAGE_TAG"
  # The default builder (docker driver) sees the local base image the second build starts FROM.
  mutate docker buildx build --builder default --platform linux/amd64 --provenance=false --load \
    -f "$REPO_ROOT/infra/Dockerfile.cpu" -t "$base" "$REPO_ROOT"
  mutate docker buildx build --builder default --platform linux/amd64 --provenance=false --load \
    --build-arg "BASE_IMAGE=$base" -f "$SCRIPT_DIR/Dockerfile.lambda" -t "$IMAGE" "$SCRIPT_DIR"
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "+ aws --region $AWS_REGION ecr get-login-password | docker login --username AWS --password-stdin $registry"
  else
    log "docker login $registry"
    "${AWS[@]}" ecr get-login-password | docker login --username AWS --password-stdin "$registry"
  fi
  mutate docker push "$IMAGE"
  digest="$("${AWS[@]}" ecr describe-images --repository-name "$ECR_REPO" \
    --image-ids "imageTag=$IMAGE_TAG" --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true)"
  if [[ "$digest" != sha256:* ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "pushed $IMAGE, but could not read its digest"
    digest="sha256:DIGEST"
  fi
  IMAGE_REF="$registry/$ECR_REPO@$digest"
}

# The function's execution role: Lambda may assume it, and it may write logs, nothing else.
ensure_role() {
  local role="$FUNCTION-role"
  ROLE_ARN="$("${AWS[@]}" iam get-role --role-name "$role" --query Role.Arn --output text 2>/dev/null || true)"
  [[ -n "$ROLE_ARN" ]] && return 0
  local trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
  mutate "${AWS[@]}" iam create-role --role-name "$role" --assume-role-policy-document "$trust" \
    --description "$FUNCTION Lambda execution role (logs only)"
  mutate "${AWS[@]}" iam attach-role-policy --role-name "$role" --policy-arn "$BASIC_EXECUTION_POLICY"
  ROLE_ARN="arn:aws:iam::$ACCOUNT:role/$role"
}

# Lambda's --environment as JSON (values are checked to hold no '"' or '\').
environment_json() {
  local vars=("MAX_REQUEST_BYTES=$MAX_REQUEST_BYTES" "DEFAULT_ARCH=fast" "THREADS=4"
    "AWS_LWA_INVOKE_MODE=response_stream")
  [[ -n "$DEFAULT_STYLE" ]] && vars+=("DEFAULT_STYLE=$DEFAULT_STYLE")
  vars+=("${EXTRA_ENV[@]}")
  local kv json=""
  for kv in "${vars[@]}"; do
    json+="\"${kv%%=*}\":\"${kv#*=}\","
  done
  echo "{\"Variables\":{${json%,}}}"
}

deploy_function() {
  local where=(--function-name "$FUNCTION")
  local config=(--memory-size "$MEMORY_MB" --timeout "$TIMEOUT_S" --environment "$(environment_json)")
  if "${AWS[@]}" lambda get-function "${where[@]}" --query Configuration.FunctionArn \
    --output text >/dev/null 2>&1; then
    mutate "${AWS[@]}" lambda update-function-code "${where[@]}" --image-uri "$IMAGE_REF"
    mutate "${AWS[@]}" lambda wait function-updated-v2 "${where[@]}"
    mutate "${AWS[@]}" lambda update-function-configuration "${where[@]}" "${config[@]}"
  else
    # Retried: a role created seconds ago "cannot be assumed by Lambda" until IAM has it.
    mutate_retry "${AWS[@]}" lambda create-function "${where[@]}" --package-type Image \
      --code "ImageUri=$IMAGE_REF" --role "$ROLE_ARN" --architectures x86_64 "${config[@]}" \
      --description "styleserve: neural style transfer (infra/aws/deploy.sh)"
  fi
  mutate "${AWS[@]}" lambda wait function-active-v2 "${where[@]}"
}

ensure_url() {
  local where=(--function-name "$FUNCTION") auth=AWS_IAM policy
  [[ "$PUBLIC" == 1 ]] && auth=NONE
  local url_config=(--auth-type "$auth" --invoke-mode RESPONSE_STREAM)
  if "${AWS[@]}" lambda get-function-url-config "${where[@]}" --output text >/dev/null 2>&1; then
    mutate "${AWS[@]}" lambda update-function-url-config "${where[@]}" "${url_config[@]}"
  else
    mutate "${AWS[@]}" lambda create-function-url-config "${where[@]}" "${url_config[@]}"
  fi
  [[ "$PUBLIC" == 1 ]] || return 0
  # A public URL still needs the function's resource policy to let anyone invoke it, through
  # the URL only: both actions since October 2025.
  policy="$("${AWS[@]}" lambda get-policy "${where[@]}" --query Policy --output text 2>/dev/null || true)"
  [[ "$policy" == *FunctionURLAllowPublicAccess* ]] ||
    mutate "${AWS[@]}" lambda add-permission "${where[@]}" --statement-id FunctionURLAllowPublicAccess \
      --action lambda:InvokeFunctionUrl --principal '*' --function-url-auth-type NONE
  [[ "$policy" == *FunctionURLAllowInvokeAction* ]] ||
    mutate "${AWS[@]}" lambda add-permission "${where[@]}" --statement-id FunctionURLAllowInvokeAction \
      --action lambda:InvokeFunction --principal '*' --invoked-via-function-url
}

print_result() {
  local url
  url="$("${AWS[@]}" lambda get-function-url-config --function-name "$FUNCTION" \
    --query FunctionUrl --output text 2>/dev/null || true)"
  if [[ -z "$url" ]]; then
    [[ "$DRY_RUN" == 1 ]] || die "deployed, but could not read the function URL of $FUNCTION"
    url="https://FUNCTION-URL.lambda-url.$AWS_REGION.on.aws/"
  fi
  url="${url%/}"
  echo
  echo "Function URL: $url"
  echo "Stylize a picture (raw photo body up to $MAX_REQUEST_BYTES bytes; larger: the function's JSON 413, or AWS's 413 past the 6 MB payload):"
  if [[ "$PUBLIC" == 1 ]]; then
    echo "  curl -sS -X POST \"$url/\" -F image=@infra/smoke.jpg -F format=png -o stylized.png"
    echo "Smoke test:"
    echo "  infra/smoke_test.sh $url"
  else
    # \$ left for the reader's shell, which supplies the credentials.
    cat <<EOF
  curl -sS -X POST "$url/?format=png" --aws-sigv4 "aws:amz:$AWS_REGION:lambda" \\
    --user "\$AWS_ACCESS_KEY_ID:\$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: \$AWS_SESSION_TOKEN" \\
    -H "Content-Type: image/jpeg" --data-binary @infra/smoke.jpg -o stylized.png
  (callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction on this function; drop the
  x-amz-security-token header for long-term keys)
EOF
  fi
  echo "Tear down: infra/aws/deploy.sh --teardown --region $AWS_REGION --function $FUNCTION"
  if [[ "$SMOKE" == 1 ]]; then
    local smoke=("$REPO_ROOT/infra/smoke_test.sh" "$url")
    if [[ "$DRY_RUN" == 1 ]]; then
      echo "+ $(quote_cmd "${smoke[@]}")"
    else
      "${smoke[@]}"
    fi
  fi
}

teardown() {
  local role="$FUNCTION-role"
  if "${AWS[@]}" lambda get-function --function-name "$FUNCTION" --query Configuration.FunctionArn \
    --output text >/dev/null 2>&1; then
    mutate "${AWS[@]}" lambda delete-function --function-name "$FUNCTION"
  else
    log "no Lambda function $FUNCTION in $AWS_REGION; nothing to delete there"
  fi
  if "${AWS[@]}" iam get-role --role-name "$role" --query Role.Arn --output text >/dev/null 2>&1; then
    mutate "${AWS[@]}" iam detach-role-policy --role-name "$role" --policy-arn "$BASIC_EXECUTION_POLICY"
    mutate "${AWS[@]}" iam delete-role --role-name "$role"
  fi
  if "${AWS[@]}" ecr describe-repositories --repository-names "$ECR_REPO" --output text \
    >/dev/null 2>&1; then
    mutate "${AWS[@]}" ecr delete-repository --repository-name "$ECR_REPO" --force
  fi
  echo "Left in place: the function's CloudWatch log group /aws/lambda/$FUNCTION (delete: aws logs delete-log-group --log-group-name /aws/lambda/$FUNCTION)."
}

main() {
  parse_args "$@"
  require_aws
  if [[ "$TEARDOWN" == 1 ]]; then
    teardown
    return 0
  fi
  validate
  command -v docker >/dev/null 2>&1 || [[ "$DRY_RUN" == 1 ]] ||
    die "docker not found on PATH: the image is built locally (docker buildx) and pushed to ECR"
  log "account $ACCOUNT, region $AWS_REGION, function $FUNCTION (CPU, ${MEMORY_MB} MB), repository $ECR_REPO"
  ensure_repo
  build_and_push
  ensure_role
  deploy_function
  ensure_url
  print_result
}

main "$@"
