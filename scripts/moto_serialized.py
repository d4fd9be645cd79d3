"""moto's server with one request at a time.

moto_server is threaded and its DynamoDB backend takes no lock, so two concurrent conditional
writes can both pass their condition. Real DynamoDB evaluates a condition and writes atomically;
the relay's leases and claims rely on it. Serialising requests restores that guarantee locally,
while the threaded server still accepts every connection (keep-alive clients never starve).

usage: python moto_serialized.py HOST PORT
"""

import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

LOCK = threading.Lock()
APP = DomainDispatcherApplication(create_backend_app)


def serialised(environ, start_response):
    with LOCK:
        # Drain the response inside the lock: the backend's work happens while iterating.
        return list(APP(environ, start_response))


if __name__ == "__main__":
    run_simple(sys.argv[1], int(sys.argv[2]), serialised, threaded=True, use_reloader=False)
