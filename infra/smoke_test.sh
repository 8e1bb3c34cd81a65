#!/usr/bin/env bash
# End-to-end check of a running style transfer service (Cloud Run or local), one request of
# each kind the API accepts. Needs curl and python3 with Pillow (to decode what comes back).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${SMOKE_IMAGE:-$SCRIPT_DIR/smoke.jpg}"
PYTHON="${PYTHON:-python3}"
TIMEOUT="${SMOKE_TIMEOUT:-120}" # per request; a cold GPU instance can take a minute
TOKEN="${SMOKE_TOKEN:-}"
EXPECT_GPU=0
URL=""
PASSED=0
FAILED=()

usage() {
  cat <<EOF
Usage: infra/smoke_test.sh URL [--token TOKEN] [--expect-gpu] [--timeout SECONDS]

Sends $IMAGE (64x48) to URL as multipart, JSON and raw bodies and checks
status, Content-Type and that the returned image decodes at 64x48; also checks GET /healthz,
GET /styles and that a broken image gets a JSON error. Exits non-zero if any check fails.

  URL               e.g. https://styleserve-xxxx.a.run.app or http://127.0.0.1:8080
  --token TOKEN     [SMOKE_TOKEN] sent as "Authorization: Bearer TOKEN"; for an authenticated
                    Cloud Run service: --token "\$(gcloud auth print-identity-token)"
  --expect-gpu      fail unless /healthz reports CUDAExecutionProvider
  --timeout SECONDS [SMOKE_TIMEOUT] per request, default 120

Needs curl and python3 with Pillow (PYTHON=... picks another interpreter).
EOF
}

die() {
  echo "smoke_test.sh: error: $*" >&2
  exit 2
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --token) [[ $# -ge 2 ]] || die "--token needs a value"; TOKEN="$2"; shift ;;
      --timeout) [[ $# -ge 2 ]] || die "--timeout needs a value"; TIMEOUT="$2"; shift ;;
      --expect-gpu) EXPECT_GPU=1 ;;
      -h | --help) usage; exit 0 ;;
      -*) die "unknown option '$1' (see --help)" ;;
      *) [[ -z "$URL" ]] || die "only one URL, got '$URL' and '$1'"; URL="${1%/}" ;;
    esac
    shift
  done
  [[ -n "$URL" ]] || { usage >&2; exit 2; }
  command -v curl >/dev/null || die "curl not found"
  "$PYTHON" -c 'import PIL' 2>/dev/null || die "$PYTHON with Pillow is needed (pip install pillow)"
  [[ -f "$IMAGE" ]] || die "test image $IMAGE not found"
}

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS  $1"
}

fail() {
  FAILED+=("$1")
  echo "FAIL  $1: $2"
}

# request NAME CURL_ARGS... : fills STATUS, CTYPE and the body in $WORK/NAME.body.
request() {
  local name="$1" auth=()
  shift
  [[ -n "$TOKEN" ]] && auth=(-H "Authorization: Bearer $TOKEN")
  local out
  if ! out="$(curl -sS --max-time "$TIMEOUT" "${auth[@]}" -o "$WORK/$name.body" \
    -w '%{http_code} %{content_type}' "$@" 2>&1)"; then
    STATUS=000
    CTYPE=""
    echo "curl: $out" >"$WORK/$name.body"
    return 0
  fi
  STATUS="${out%% *}"
  CTYPE="${out#* }"
  CTYPE="${CTYPE%%;*}"
}

# Short excerpt of a response body for failure messages (JSON errors are the useful part).
body_excerpt() { head -c 300 "$WORK/$1.body" | tr -c '[:print:]' ' '; }

# check_image NAME FORMAT: body must be an image of FORMAT (PNG/JPEG/WEBP) sized like smoke.jpg.
check_image() {
  "$PYTHON" - "$WORK/$1.body" "$2" "$IMAGE" <<'PY'
import sys
from PIL import Image
path, fmt, ref = sys.argv[1:]
want = Image.open(ref).size
try:
    im = Image.open(path)
    im.load()
except Exception as e:
    sys.exit(f"body does not decode as an image ({e})")
if im.format != fmt:
    sys.exit(f"image is {im.format}, expected {fmt}")
if im.size != want:
    sys.exit(f"image is {im.size[0]}x{im.size[1]}, expected {want[0]}x{want[1]}")
PY
}

check_healthz() {
  request healthz "$URL/healthz"
  if [[ "$STATUS" != 200 || "$CTYPE" != application/json ]]; then
    fail "GET /healthz" "HTTP $STATUS $CTYPE: $(body_excerpt healthz)"
    return
  fi
  local msg
  if msg="$("$PYTHON" - "$WORK/healthz.body" "$EXPECT_GPU" 2>&1 <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
if body.get("status") != "ok":
    sys.exit(f"status is {body.get('status')!r}, expected 'ok'")
provider = body.get("provider")
if provider not in ("CUDAExecutionProvider", "CPUExecutionProvider"):
    sys.exit(f"provider is {provider!r}")
if sys.argv[2] == "1" and provider != "CUDAExecutionProvider":
    sys.exit(f"running on {provider}, expected CUDAExecutionProvider (--expect-gpu)")
if not isinstance(body.get("styles"), int) or body["styles"] < 1:
    sys.exit(f"styles is {body.get('styles')!r}, expected a count >= 1")
print(f"{provider}, {body['styles']} styles")
PY
  )"; then
    pass "GET /healthz ($msg)"
  else
    fail "GET /healthz" "$msg"
  fi
}

check_styles() {
  request styles "$URL/styles"
  if [[ "$STATUS" != 200 || "$CTYPE" != application/json ]]; then
    fail "GET /styles" "HTTP $STATUS $CTYPE: $(body_excerpt styles)"
    return
  fi
  local msg
  if msg="$("$PYTHON" - "$WORK/styles.body" 2>&1 <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
styles = body.get("styles")
if not isinstance(styles, list) or not styles:
    sys.exit(f"styles is {styles!r}, expected a non-empty list")
names = [s["name"] if isinstance(s, dict) else s for s in styles]
if body.get("default") not in names:
    sys.exit(f"default {body.get('default')!r} is not among {names}")
print(body["default"])
PY
  )"; then
    pass "GET /styles (default $msg)"
  else
    fail "GET /styles" "$msg"
  fi
}

# check_image_response NAME LABEL EXPECTED_CTYPE FORMAT (after `request NAME ...`)
check_image_response() {
  local msg
  if [[ "$STATUS" != 200 ]]; then
    fail "$2" "HTTP $STATUS: $(body_excerpt "$1")"
  elif [[ "$CTYPE" != "$3" ]]; then
    fail "$2" "Content-Type is '$CTYPE', expected $3"
  elif ! msg="$(check_image "$1" "$4" 2>&1)"; then
    fail "$2" "$msg"
  else
    pass "$2 -> $3 64x48"
  fi
}

check_multipart() {
  request multipart -F "image=@$IMAGE;type=image/jpeg" -F format=png "$URL/"
  check_image_response multipart "POST / multipart" image/png PNG
}

check_multipart_alias() {
  request alias -F "image=@$IMAGE;type=image/jpeg" -F format=jpeg "$URL/stylize"
  check_image_response alias "POST /stylize multipart" image/jpeg JPEG
}

check_json() {
  local name="POST / JSON"
  "$PYTHON" - "$IMAGE" >"$WORK/request.json" <<'PY'
import base64, json, sys
print(json.dumps({"image": base64.b64encode(open(sys.argv[1], "rb").read()).decode(), "format": "jpeg"}))
PY
  request json -H "Content-Type: application/json" --data-binary "@$WORK/request.json" "$URL/"
  if [[ "$STATUS" != 200 || "$CTYPE" != application/json ]]; then
    fail "$name" "HTTP $STATUS $CTYPE: $(body_excerpt json)"
    return
  fi
  local msg
  if msg="$("$PYTHON" - "$WORK/json.body" "$IMAGE" 2>&1 <<'PY'
import base64, io, json, sys
from PIL import Image
body = json.load(open(sys.argv[1]))
want = Image.open(sys.argv[2]).size
missing = {"image", "format", "width", "height", "style", "timings_ms"} - body.keys()
if missing:
    sys.exit(f"JSON lacks {sorted(missing)}")
im = Image.open(io.BytesIO(base64.b64decode(body["image"], validate=True)))
im.load()
if im.format != "JPEG" or body["format"] != "jpeg":
    sys.exit(f"image is {im.format} / format {body['format']!r}, expected JPEG / 'jpeg'")
if im.size != want or (body["width"], body["height"]) != want:
    sys.exit(f"image is {im.size[0]}x{im.size[1]} (JSON says {body['width']}x{body['height']}), "
             f"expected {want[0]}x{want[1]}")
PY
  )"; then
    pass "$name -> base64 JPEG 64x48"
  else
    fail "$name" "$msg"
  fi
}

check_raw() {
  request raw -H "Content-Type: image/jpeg" --data-binary "@$IMAGE" "$URL/?format=webp"
  check_image_response raw "POST / raw image/jpeg" image/webp WEBP
}

check_error() {
  local name="POST / broken image"
  request error -H "Content-Type: image/jpeg" --data-binary "not an image" "$URL/"
  if [[ "$STATUS" != 4* || "$CTYPE" != application/json ]]; then
    fail "$name" "expected a 4xx JSON error, got HTTP $STATUS $CTYPE"
  elif "$PYTHON" -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"] and e["message"]' \
    "$WORK/error.body" 2>/dev/null; then
    pass "$name -> HTTP $STATUS JSON error"
  else
    fail "$name" "error body is not {\"error\": {\"code\", \"message\"}}: $(body_excerpt error)"
  fi
}

main() {
  parse_args "$@"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  echo "Smoke testing $URL"
  check_healthz
  check_styles
  check_multipart
  check_multipart_alias
  check_json
  check_raw
  check_error
  local total=$((PASSED + ${#FAILED[@]}))
  if ((${#FAILED[@]})); then
    local IFS=";"
    echo "Smoke test FAILED: $PASSED of $total checks passed; failing: ${FAILED[*]}"
    exit 1
  fi
  echo "Smoke test OK: all $total checks passed"
}

main "$@"
