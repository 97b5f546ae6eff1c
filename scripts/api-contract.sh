#!/usr/bin/env bash
# The API's contract, checked by machines against a running `vigil demo`:
#  1. openapi-spec-validator on the document the node serves (/api/openapi.json);
#  2. schemathesis against it, once with each role's token (operator, admin, doctor, auditor,
#     patient) and once with none, for a bounded time each, failing on any server error (5xx
#     other than a documented 503) and on any response that breaks the document's schema;
#  3. the event stream (which never ends, so schemathesis leaves it out): 200
#     text/event-stream with a token, 401 without.
#
#   scripts/api-contract.sh                      # builds target/debug/vigil if VIGIL is unset
#   VIGIL=path/to/vigil MAX_TIME_S=30 scripts/api-contract.sh
#
# The Python tools are pinned and installed with pip into a venv ($API_CONTRACT_VENV, default
# ~/.cache/vigil-api-contract). The demo runs on free 127.0.0.1 ports in a temporary data dir
# and is stopped on exit. Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
VENV=${API_CONTRACT_VENV:-$HOME/.cache/vigil-api-contract}
# Per role: schemathesis stops at whichever comes first.
MAX_TIME_S=${MAX_TIME_S:-45}
MAX_EXAMPLES=${MAX_EXAMPLES:-15}
START_TIMEOUT_S=${START_TIMEOUT_S:-300}
ROLES=(operator admin doctor auditor patient anonymous)

if [[ -z "${VIGIL:-}" ]]; then
  cargo build -p vigil >&2
  VIGIL=${CARGO_TARGET_DIR:-target}/debug/vigil
fi

# The tools, pinned: reinstalled only when the venv lacks these versions.
if ! "$VENV/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION' or m.version('openapi-spec-validator') != '$VALIDATOR_VERSION')
" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

WORK=$(mktemp -d)
touch "$WORK/demo.log"
DEMO_PID=
cleanup() {
  if [[ -n "$DEMO_PID" ]] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A port P with P (HTTP) and P+1 (MQTT) free on 127.0.0.1.
PORT=$("$VENV/bin/python" - <<'EOF'
import random, socket
for _ in range(100):
    port = random.randint(20000, 50000)
    try:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", port)); b.bind(("127.0.0.1", port + 1))
        print(port); break
    except OSError:
        continue
else:
    raise SystemExit("no free port pair")
EOF
)
BASE=http://127.0.0.1:$PORT
# A small demo that stops by itself, should this script be killed before its trap runs.
"$VIGIL" demo --people 5 --speed 10 --ecg 1 --port "$PORT" --data-dir "$WORK/data" \
  --duration-s 1800 > "$WORK/demo.log" 2>&1 &
DEMO_PID=$!

started=$SECONDS
until grep -q "Dashboard:" "$WORK/demo.log"; do
  if ! kill -0 "$DEMO_PID" 2>/dev/null || (( SECONDS - started > START_TIMEOUT_S )); then
    echo "api-contract: the demo did not start:" >&2
    cat "$WORK/demo.log" >&2
    exit 1
  fi
  sleep 1
done
echo "api-contract: demo up on $BASE in $(( SECONDS - started )) s"

token() {
  "$VENV/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2] + '_token'])" \
    "$WORK/data/demo-state.json" "$1"
}

failed=()

# 1. The document, as served.
curl -sSf "$BASE/api/openapi.json" -o "$WORK/openapi.json"
if "$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"; then
  echo "api-contract: openapi-spec-validator OK"
else
  failed+=("openapi-spec-validator")
fi

# 2. schemathesis per role.
for role in "${ROLES[@]}"; do
  auth=()
  if [[ $role != anonymous ]]; then
    auth=(--header "Authorization: Bearer $(token "$role")")
  fi
  echo "api-contract: schemathesis as $role (at most ${MAX_TIME_S} s, ${MAX_EXAMPLES} examples per operation)"
  log="$WORK/schemathesis-$role.log"
  for attempt in 1 2; do
    # Run from the temporary dir: schemathesis keeps a cache (.schemathesis/) where it runs.
    if (cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/api/openapi.json" "${auth[@]}" \
        --checks not_a_server_error,response_schema_conformance \
        --exclude-path /api/alerts/stream \
        --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME_S" \
        --request-timeout 30 --workers 2 --no-color \
        --report junit --report-junit-path "$WORK/junit-$role.xml" \
        > "$log" 2>&1); then
      tail -n 12 "$log"
      break
    fi
    # A crash of the tool itself, with no check failed, is run once more; anything the API
    # did wrong fails at once. (Seen: CPython 3.11's "AST constructor recursion depth
    # mismatch" SystemError inside hypothesis while it describes a strategy.)
    if [[ $attempt == 1 ]] && grep -q "Runtime Error" "$log" && ! grep -q "FAILURES" "$log"; then
      echo "api-contract: schemathesis itself crashed (no check failed); running $role again:"
      grep -m 3 -A 2 "Runtime Error" "$log" || true
      continue
    fi
    cat "$log"
    failed+=("schemathesis as $role")
    break
  done
done

# 3. The event stream: answered at once, then kept open (curl gives up after 2 s).
stream() {
  curl -s -m 2 -o /dev/null -w '%{http_code} %{content_type}' "$@" "$BASE/api/alerts/stream" || true
}
answer=$(stream -H "Authorization: Bearer $(token operator)")
[[ $answer == "200 text/event-stream"* ]] || failed+=("stream with a token answered: $answer")
answer=$(stream)
[[ $answer == 401* ]] || failed+=("stream without a token answered: $answer")

if (( ${#failed[@]} )); then
  printf 'api-contract: FAILED: %s\n' "${failed[@]}" >&2
  echo "--- demo log (last 30 lines)" >&2
  tail -n 30 "$WORK/demo.log" >&2
  exit 1
fi
echo "api-contract: all checks passed"
