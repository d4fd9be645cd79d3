#!/usr/bin/env bash
# Installs what tests and the demo need beyond the machine's Rust toolchain and python3:
# .venv/ with moto[server], cfn-lint and cargo-lambda (pinned in scripts/requirements.txt and
# scripts/constraints.txt). Idempotent: a stamp keyed on those files (and the python version)
# makes a second run a no-op that takes well under a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
CON="$ROOT/scripts/constraints.txt"
STAMP="$VENV/.bootstrap-stamp"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# --- system prerequisites (present on this machine kind; apt only if something is missing)
missing=()
for tool in python3 curl setsid cargo; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
  declare -A pkg=([python3]=python3 [curl]=curl [setsid]=util-linux)
  apt_pkgs=()
  for t in "${missing[@]}"; do
    [[ -n "${pkg[$t]:-}" ]] || die "$t not found and cannot be installed here (the machine's Rust toolchain is expected)"
    apt_pkgs+=("${pkg[$t]}")
  done
  log "installing missing system packages: ${apt_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi
cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is not installed (rustup component add clippy)"

# --- python venv
want="$(cat "$REQ" "$CON" | sha256sum | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c '' 2>/dev/null; then
  exit 0
fi

start=$SECONDS
if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  log "creating .venv"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    log "python3 -m venv failed; installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
fi
rm -f "$STAMP"
log "installing Python tools into .venv (moto[server], cfn-lint, cargo-lambda)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ" -c "$CON"

# --- check the tools answer
PATH="$VENV/bin:$PATH" cargo lambda --version >/dev/null || die "cargo lambda does not run from .venv/bin"
"$VENV/bin/cfn-lint" --version >/dev/null || die "cfn-lint does not run"
"$VENV/bin/moto_server" --help >/dev/null || die "moto_server does not run"

echo "$want" >"$STAMP"
log "bootstrap done in $((SECONDS - start))s ($(PATH="$VENV/bin:$PATH" cargo lambda --version), $("$VENV/bin/cfn-lint" --version), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'))"
