#!/usr/bin/env bash
# The whole check, as CI runs it (`make test`, `.ci/run`):
#   1. cargo test --workspace, against a fresh moto_server (AWS_ENDPOINT_URL etc. exported)
#   2. the contract test (scripts/contract.sh): schemathesis against the real handlers, from
#      infra/openapi.yaml, on its own moto and gateway
#   3. cargo fmt --check, cargo clippy --workspace --all-targets -- -D warnings
#   4. cfn-lint infra/template.yaml, and sam validate --lint (the SAM transform, then cfn-lint)
# Every step runs even when an earlier one failed; the summary names the failures and the
# script exits 1 if there was any.
# TEST_RUNNER=nextest uses `cargo nextest run` (+ doctests via cargo test --doc) instead.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# A fresh CI clone gains nothing from incremental compilation and pays for writing it.
[[ -n "${CI:-}" ]] && export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"

declare -a STEP_NAMES=() STEP_RC=() STEP_SECS=()
step() { # step NAME CMD [ARGS...]
  local name="$1" start rc=0; shift
  printf '\n\033[1;35m### %s\033[0m\n' "$name" >&2
  start=$SECONDS
  "$@" || rc=$?
  STEP_NAMES+=("$name"); STEP_RC+=("$rc"); STEP_SECS+=("$((SECONDS - start))")
  ((rc == 0)) || warn "step '$name' failed (exit $rc)"
  return 0
}

TEST_LOG="$LOCAL_DIR/cargo-test.log"
run_tests() {
  local rc=0
  start_moto || return 1
  if [[ "${TEST_RUNNER:-cargo}" == nextest ]]; then
    { cargo nextest run --workspace --no-fail-fast && cargo test --workspace --doc; } 2>&1 | tee "$TEST_LOG" || rc=$?
  else
    cargo test --workspace --no-fail-fast 2>&1 | tee "$TEST_LOG" || rc=$?
  fi
  stop_moto
  return "$rc"
}

run_cfn_lint() {
  local tpl="$ROOT/infra/template.yaml"
  [[ -f "$tpl" ]] || { printf 'infra/template.yaml not found\n' >&2; return 1; }
  "$VENV/bin/cfn-lint" "$tpl"
}

run_sam_validate() {
  SAM_CLI_TELEMETRY=0 "$ROOT/.venv-sam/bin/sam" validate --lint -t "$ROOT/infra/template.yaml"
}

step bootstrap "$ROOT/scripts/bootstrap.sh"
if [[ "${STEP_RC[0]}" != 0 ]]; then
  die "bootstrap failed; nothing else can run"
fi
use_venv
step "moto patch" "$VENV/bin/python" "$ROOT/scripts/moto_serialized_check.py"
step "cargo test" run_tests
step contract "$ROOT/scripts/contract.sh"
step rustfmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step cfn-lint run_cfn_lint
step "sam validate" run_sam_validate

# ---------------------------------------------------------------- summary
failed=()
printf '\n\033[1m%-12s %-6s %8s\033[0m\n' step result time >&2
for i in "${!STEP_NAMES[@]}"; do
  if [[ "${STEP_RC[$i]}" == 0 ]]; then res=ok; else res=FAILED; failed+=("${STEP_NAMES[$i]}"); fi
  printf '%-12s %-6s %7ss\n' "${STEP_NAMES[$i]}" "$res" "${STEP_SECS[$i]}" >&2
done

# Totals over every test binary (cargo test prints one "test result:" line per binary;
# nextest one "Summary" line), as one closing line.
if [[ -f "$TEST_LOG" ]]; then
  sed 's/\x1b\[[0-9;]*m//g' "$TEST_LOG" | awk '
    /^test result:/ { for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i }
      seen = 1 }
    /^ *Summary \[/ { for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^skipped/) s += $i }
      seen = 1 }
    END { if (seen) printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }'
fi

# The contract run's own closing line (operations, cases generated, failures).
if [[ -f "$LOCAL_DIR/contract.log" ]]; then
  grep -a '^contract:' "$LOCAL_DIR/contract.log" | tail -n 1 || true
fi

if ((${#failed[@]})); then
  printf '\nFAILED steps: %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\nall steps passed\n' >&2
