#!/usr/bin/env bash
# Installs what tests, the demo and packaging need beyond the machine's Rust toolchain and
# python3, in two venvs (their pins conflict):
#   .venv/      moto[server], cfn-lint, cargo-lambda   (scripts/requirements.txt, constraints.txt)
#   .venv-sam/  aws-sam-cli                            (scripts/requirements-sam.txt,
#                                                       constraints-sam.txt)
# Idempotent: a stamp per venv keyed on its files (and the python version) makes a second run a
# no-op that takes well under a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SAM_VENV="$ROOT/.venv-sam"

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

# --- python venvs
# ensure_venv DIR REQUIREMENTS CONSTRAINTS: (re)creates DIR and installs the pins unless its
# stamp says they are in already. Returns 0 when it installed, 1 when nothing was to do. Called
# as an `if` condition, where `set -e` does not apply: every step that can fail says so itself.
ensure_venv() {
  local dir="$1" req="$2" con="$3" want
  want="$(cat "$req" "$con" | sha256sum | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "$dir/bin/python" && -f "$dir/.bootstrap-stamp" && "$(cat "$dir/.bootstrap-stamp")" == "$want" ]] && "$dir/bin/python" -c '' 2>/dev/null; then
    return 1
  fi
  if ! "$dir/bin/python" -c '' 2>/dev/null; then
    log "creating ${dir#"$ROOT"/}"
    rm -rf "$dir"
    if ! python3 -m venv "$dir" 2>/dev/null; then
      log "python3 -m venv failed; installing python3-venv"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } ||
        die "could not install python3-venv"
      rm -rf "$dir"
      python3 -m venv "$dir" || die "python3 -m venv $dir failed"
    fi
  fi
  rm -f "$dir/.bootstrap-stamp"
  log "installing $(grep -v '^#' "$req" | tr '\n' ' ')into ${dir#"$ROOT"/}"
  "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" -c "$con" ||
    die "pip install into ${dir#"$ROOT"/} failed"
  STAMP_VALUE="$want"
  return 0
}

start=$SECONDS
if ensure_venv "$VENV" "$ROOT/scripts/requirements.txt" "$ROOT/scripts/constraints.txt"; then
  PATH="$VENV/bin:$PATH" cargo lambda --version >/dev/null || die "cargo lambda does not run from .venv/bin"
  "$VENV/bin/cfn-lint" --version >/dev/null || die "cfn-lint does not run"
  "$VENV/bin/moto_server" --help >/dev/null || die "moto_server does not run"
  echo "$STAMP_VALUE" >"$VENV/.bootstrap-stamp"
  log ".venv done in $((SECONDS - start))s ($(PATH="$VENV/bin:$PATH" cargo lambda --version), $("$VENV/bin/cfn-lint" --version), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)'))"
fi
sam_start=$SECONDS
if ensure_venv "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt" "$ROOT/scripts/constraints-sam.txt"; then
  SAM_CLI_TELEMETRY=0 "$SAM_VENV/bin/sam" --version >/dev/null || die "sam does not run from .venv-sam/bin"
  echo "$STAMP_VALUE" >"$SAM_VENV/.bootstrap-stamp"
  log ".venv-sam done in $((SECONDS - sam_start))s ($(SAM_CLI_TELEMETRY=0 "$SAM_VENV/bin/sam" --version))"
fi
