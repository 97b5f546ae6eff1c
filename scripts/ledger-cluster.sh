#!/usr/bin/env bash
# Start a local 4-validator Vigil ledger cluster: 4 separate `vigil node` processes on
# 127.0.0.1:${BASE_PORT}..+3, authenticated p2p, storage under DIR/v{i}.
#
#   scripts/ledger-cluster.sh [DIR]          # default DIR=target/ledger-cluster
#   VIGIL=path/to/vigil BASE_PORT=7100 scripts/ledger-cluster.sh /tmp/cluster
#
# First run: generates keys (v0..v3.key, admin.key), genesis.toml and node{i}.toml in DIR.
# Later runs reuse them, so the cluster resumes from its stored chain. Logs: DIR/v{i}.log.
# Stops every validator on Ctrl-C / exit. `DURATION_S=20` stops it after 20 seconds.
set -euo pipefail

DIR=${1:-target/ledger-cluster}
BASE_PORT=${BASE_PORT:-7100}
VALIDATORS=4
VIGIL=${VIGIL:-}
if [[ -z "$VIGIL" ]]; then
  cargo build --release -p vigil >&2
  VIGIL=${CARGO_TARGET_DIR:-target}/release/vigil
fi
mkdir -p "$DIR"

if [[ ! -f "$DIR/genesis.toml" ]]; then
  {
    echo 'label = "vigil-local-cluster"'
    for i in $(seq 0 $((VALIDATORS - 1))); do
      pk=$("$VIGIL" keygen --out "$DIR/v$i.key")
      printf '\n[[validators]]\npublic_key = "%s"\naddress = "127.0.0.1:%d"\n' "$pk" $((BASE_PORT + i))
    done
    admin=$("$VIGIL" keygen --out "$DIR/admin.key")
    printf '\n[[roles]]\npublic_key = "%s"\nrole = "admin"\n' "$admin"
  } > "$DIR/genesis.toml.tmp"
  mv "$DIR/genesis.toml.tmp" "$DIR/genesis.toml"
  for i in $(seq 0 $((VALIDATORS - 1))); do
    printf 'key_file = "v%d.key"\ngenesis = "genesis.toml"\ndata_dir = "v%d"\n' "$i" "$i" > "$DIR/node$i.toml"
  done
fi

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

for i in $(seq 0 $((VALIDATORS - 1))); do
  "$VIGIL" node --config "$DIR/node$i.toml" --status-every-s 2 > "$DIR/v$i.log" 2>&1 &
  pids+=($!)
done
echo "started ${#pids[@]} validators (pids ${pids[*]}); logs in $DIR/v*.log" >&2

if [[ -n "${DURATION_S:-}" ]]; then
  sleep "$DURATION_S"
  tail -n 1 "$DIR"/v*.log
else
  wait
fi
