"""Cargo runner for the functions `cargo lambda watch` starts in `make demo` (scripts/demo.sh).

Why: cargo-lambda's emulator (1.9.2, crates/cargo-lambda-watch/src/runtime/functions_router.rs)
answers every `invocation/next` with `Lambda-Runtime-Deadline-Ms: 600000`, which the runtime
reads as milliseconds since the epoch: a deadline in 1970. The relay takes the deadline at its
word (shared/src/refresh/deadline.rs: no refresh starts that could not finish before it), so
locally token-refresh refreshed nothing. No watch option sets it (`--timeout` only bounds how
long the invoke request waits).

What: run the function binary with its AWS_LAMBDA_RUNTIME_API pointed at a small proxy in front
of the emulator that passes everything through and, on each `invocation/next`, sets the
deadline to now + the function's Timeout from infra/template.yaml (its own, else the Globals'),
as Lambda does. Used as CARGO_TARGET_<triple>_RUNNER for the watch process only, so
`cargo run --bin NAME` (what the watch spawns) starts the binary through it.
"""

import http.client
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive"}


def template_timeouts():
    """{binary: timeout seconds} from infra/template.yaml."""

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short tags (!Ref, !Sub, ...) are not YAML types; their values don't matter here.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(os.path.join(ROOT, "infra", "template.yaml")) as f:
        template = yaml.load(f, Loader=Loader)
    default = template["Globals"]["Function"]["Timeout"]
    timeouts = {}
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            timeouts[binary] = resource["Properties"].get("Timeout", default)
    return timeouts


def serve(upstream, timeout_s):
    """Starts the proxy on a free loopback port; returns its address."""

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(upstream)  # no timeout: `next` is a long poll
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() in HOP_BY_HOP:
                    continue
                if key.lower() == "lambda-runtime-deadline-ms" and self.path.endswith("/invocation/next"):
                    # The invocation starts now; Lambda's deadline is now + the function's timeout.
                    value = str(int(time.time() * 1000) + timeout_s * 1000)
                self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = forward

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


def main():
    binary, args = sys.argv[1], sys.argv[2:]
    name = os.path.basename(binary)
    timeout_s = template_timeouts().get(name)
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if timeout_s is None or not runtime_api:
        # Not a function of the template (or not under the watch): run it as is.
        os.execv(binary, [binary, *args])
    # host:port, or a URL (cargo-lambda passes http://host:port/...); keep its form and path.
    if "://" in runtime_api:
        parts = urllib.parse.urlsplit(runtime_api)
        proxy = serve(parts.netloc, int(timeout_s))
        local = urllib.parse.urlunsplit(parts._replace(netloc=proxy))
    else:
        host, _, path = runtime_api.partition("/")
        proxy = serve(host, int(timeout_s))
        local = proxy + ("/" + path if path else "")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=local)
    print(f"lambda_deadline_runner: {name} with a {timeout_s} s deadline per invocation", file=sys.stderr)
    child = subprocess.Popen([binary, *args], env=env)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
