# shellcheck shell=bash
# Helpers sourced by scripts/*.sh: repo paths, logging, background services with guaranteed
# teardown, free ports, waiting for HTTP readiness, and moto_server.
#
# Usage:  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every service started with start_bg runs in its own process group (setsid) and is stopped,
# group and all, when the sourcing script exits: normally, on error, on Ctrl-C or on SIGTERM.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$ROOT/.local"
VENV="$ROOT/.venv"
mkdir -p "$LOCAL_DIR"

log()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Put the venv's tools (moto_server, cfn-lint, cargo-lambda) first on PATH.
use_venv() {
  [[ -x "$VENV/bin/python" ]] || die ".venv missing: run scripts/bootstrap.sh"
  case ":$PATH:" in *":$VENV/bin:"*) ;; *) export PATH="$VENV/bin:$PATH" ;; esac
}

# A TCP port on 127.0.0.1 that is free right now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- background services
declare -a _BG_PIDS=() _BG_NAMES=() _BG_LOGS=()

# start_bg NAME LOGFILE CMD [ARGS...]  -> starts CMD in a new session/process group,
# stdout+stderr to LOGFILE, and sets BG_PID. The process group id equals BG_PID.
start_bg() {
  local name="$1" logfile="$2"; shift 2
  : >"$logfile"
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  BG_PID=$!
  _BG_PIDS+=("$BG_PID"); _BG_NAMES+=("$name"); _BG_LOGS+=("$logfile")
  log "started $name (pid $BG_PID, log ${logfile#"$ROOT"/})"
}

_bg_index() {
  local i
  for i in "${!_BG_PIDS[@]}"; do [[ "${_BG_PIDS[$i]}" == "$1" ]] && { echo "$i"; return 0; }; done
  return 1
}

# stop_bg PID: SIGTERM the process group, wait up to 10 s, then SIGKILL what is left.
stop_bg() {
  local pid="$1" idx name i
  idx="$(_bg_index "$pid")" || return 0
  name="${_BG_NAMES[$idx]}"
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
      warn "$name did not stop on SIGTERM; killing"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset '_BG_PIDS[idx]' '_BG_NAMES[idx]' '_BG_LOGS[idx]'
  log "stopped $name"
}

# Stop every service still running, newest first.
stop_all_bg() {
  local i pids=("${_BG_PIDS[@]}")
  for (( i=${#pids[@]}-1; i>=0; i-- )); do stop_bg "${pids[$i]}"; done
}

_on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all_bg
  exit "$rc"
}
trap _on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Print the tail of a service's log (used when it fails to come up).
show_log_tail() {
  local logfile="$1" n="${2:-40}"
  [[ -f "$logfile" ]] || return 0
  printf -- '----- last %s lines of %s -----\n' "$n" "${logfile#"$ROOT"/}" >&2
  tail -n "$n" "$logfile" >&2
  printf -- '-----\n' >&2
}

# wait_http URL TIMEOUT_S PID [EXPECT]
# Polls URL until it answers. EXPECT is an HTTP status ("200") or "any" (any HTTP answer at all).
# Returns 1 (after showing that service's log) if PID exits first or TIMEOUT_S passes.
wait_http() {
  local url="$1" timeout="$2" pid="$3" expect="${4:-200}" code deadline idx
  deadline=$(( SECONDS + timeout ))
  while (( SECONDS < deadline )); do
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)"
    if [[ "$expect" == any && -n "$code" && "$code" != 000 ]] || [[ "$code" == "$expect" ]]; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      printf '\033[1;31merror:\033[0m process %s exited before %s answered\n' "$pid" "$url" >&2
      idx="$(_bg_index "$pid")" && show_log_tail "${_BG_LOGS[$idx]}"
      return 1
    fi
    sleep 0.25
  done
  printf '\033[1;31merror:\033[0m timed out after %ss waiting for %s (last status: %s)\n' "$timeout" "$url" "${code:-none}" >&2
  idx="$(_bg_index "$pid")" && show_log_tail "${_BG_LOGS[$idx]}"
  return 1
}

# ---------------------------------------------------------------- moto
# start_moto: moto_server on a free loopback port; exports the AWS_* variables every AWS SDK
# client here reads (endpoint, dummy credentials, region). Sets MOTO_PID and MOTO_PORT.
start_moto() {
  use_venv
  MOTO_PORT="$(free_port)"
  # Serialised: DynamoDB conditional writes must be atomic, as they are on AWS.
  start_bg moto "$LOCAL_DIR/moto.log" "$VENV/bin/python" "$ROOT/scripts/moto_serialized.py" 127.0.0.1 "$MOTO_PORT"
  MOTO_PID=$BG_PID
  wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" 60 "$MOTO_PID" 200 || return 1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
  log "moto_server ready at $AWS_ENDPOINT_URL"
}

stop_moto() { [[ -n "${MOTO_PID:-}" ]] && stop_bg "$MOTO_PID"; MOTO_PID=; }

# start_moto_sqs (after start_moto): SQS on a moto_server of its own, exported as
# AWS_ENDPOINT_URL_SQS, which the AWS SDKs prefer to AWS_ENDPOINT_URL for SQS. On AWS a queue
# and a table do not wait for each other; one serialised moto makes every ReceiveMessage wait
# behind DynamoDB's transactions, and the load bench would measure that queue.
start_moto_sqs() {
  local port
  port="$(free_port)"
  start_bg moto-sqs "$LOCAL_DIR/moto-sqs.log" "$VENV/bin/python" "$ROOT/scripts/moto_serialized.py" 127.0.0.1 "$port"
  wait_http "http://127.0.0.1:$port/moto-api/" 60 "$BG_PID" 200 || return 1
  export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$port"
  log "moto_server for SQS ready at $AWS_ENDPOINT_URL_SQS"
}
