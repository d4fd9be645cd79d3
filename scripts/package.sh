#!/usr/bin/env bash
# `make package`: builds the four functions for Lambda (provided.al2023, arm64) with the AWS SAM
# CLI from .venv-sam/, into .aws-sam/build/, and prints each function's zip size (what
# `sam deploy` uploads; Lambda's limit for a direct upload is 50 MB zipped).
# SAM's rust-cargolambda build method (a beta feature, hence --beta-features) runs
# `cargo lambda build --release --arm64`; cargo-lambda (and the zig it cross-links with) come
# from .venv/, which is put on PATH here. Extra arguments go to `sam build`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh"
use_venv
export SAM_CLI_TELEMETRY=0

log "sam build (cross-compiles the four functions for arm64; several minutes on 2 cores)"
"$ROOT/.venv-sam/bin/sam" build --template infra/template.yaml --beta-features "$@"

# Each function's bootstrap, zipped as sam deploy zips it, and the binary's architecture.
"$VENV/bin/python" - "$ROOT/.aws-sam/build" <<'PY'
import io, pathlib, sys, zipfile
build = pathlib.Path(sys.argv[1])
rows, failed = [], False
for fn in sorted(p for p in build.iterdir() if p.is_dir() and (p / "bootstrap").is_file()):
    binary = (fn / "bootstrap").read_bytes()
    # ELF e_machine (little-endian, offset 18): 0xB7 is AArch64.
    arch = {0xB7: "arm64", 0x3E: "x86_64"}.get(int.from_bytes(binary[18:20], "little"), "unknown")
    failed |= arch != "arm64"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary)
    rows.append((fn.name, arch, len(binary), buf.getbuffer().nbytes))
if not rows:
    sys.exit("no function artifacts in .aws-sam/build")
print(f"{'function':<24} {'arch':<7} {'binary':>10} {'zip':>10}")
for name, arch, size, zipped in rows:
    print(f"{name:<24} {arch:<7} {size / 1e6:>8.1f}MB {zipped / 1e6:>8.2f}MB")
if failed:
    sys.exit("a function was not built for arm64")
PY
log "packaged into .aws-sam/build; deploy with: sam deploy --template .aws-sam/build/template.yaml --guided --capabilities CAPABILITY_IAM (docs/deploy.md)"
