"""moto's S3 server, one request at a time.

`moto_server` runs threaded, and moto checks `If-None-Match: *` and then stores the object in two
steps: two concurrent creates of one name can both succeed, the second silently replacing the
first. Real S3 (and MinIO, R2, ...) make that check atomic, and tresor's commit log and audit trail
rely on it: with concurrent writers on the threaded server, two writers could each be told they
created the same log entry. Holding one lock around every request makes moto's check-then-store
atomic; connections are still accepted by threads.

Usage: python moto_serialized.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        # The request body is read and the whole response produced inside the lock.
        with lock:
            return list(app(environ, start_response))

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
