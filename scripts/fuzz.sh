#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer's coverage instrumentation on the stable
# toolchain (the sanitizer-coverage passes cargo-fuzz uses, without its nightly-only
# sanitizers) and runs each for a bounded time from a fresh corpus seeded by the project's
# own examples. Any crash fails the script and leaves the input in $FUZZ_OUT/<target>/.
#   FUZZ_SECONDS   time per target (default 30)
#   FUZZ_TARGET_DIR  the fuzz build's own target directory (default ~/.cache/vigil-fuzz-target)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/vigil-fuzz-target}"
out="${FUZZ_OUT:-$CARGO_TARGET_DIR/runs}"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
targets=(senml_json senml_cbor pack_admission ledger_tx ledger_evidence wfdb_header wfdb_annotations)

# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (which must not be
# instrumented: they are linked without libFuzzer's runtime).
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --locked --manifest-path fuzz/Cargo.toml --bins --target "$triple"
bin="$CARGO_TARGET_DIR/$triple/release"

# Seeds: valid inputs of each kind, so the fuzzer starts from the interesting part of the space.
seed() {
    local target=$1 dir=$2
    case "$target" in
        senml_json|pack_admission)
            printf '[{"bn":"urn:dev:vigil:oxi-1:","bt":1700000000,"n":"spo2","u":"%%","v":97}]' >"$dir/a" ;;
        senml_cbor)
            printf '\x81\xa3\x21\x67oxi-1:\x00\x64spo2\x02\x18\x61' >"$dir/a" ;;
        wfdb_header)
            printf '100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n' >"$dir/a" ;;
        wfdb_annotations)
            printf '\x12\x04\x00\x04\x13\x04\x00\x00' >"$dir/a" ;;
        *) printf '\x00' >"$dir/a" ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    corpus="$out/$target/corpus"
    artifacts="$out/$target/crashes/"
    mkdir -p "$corpus" "$artifacts"
    [[ -n "$(ls -A "$corpus")" ]] || seed "$target" "$corpus"
    echo "== fuzz $target for ${seconds}s"
    if ! "$bin/$target" -max_total_time="$seconds" -max_len=65536 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" \
        >"$out/$target/log" 2>&1; then
        failed+=("$target")
        tail -40 "$out/$target/log"
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$out/$target/log" || true
done
if ((${#failed[@]})); then
    echo "fuzz targets that crashed: ${failed[*]} (inputs in $out/<target>/crashes/)"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
