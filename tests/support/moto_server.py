"""moto's server, answering one request at a time.

moto's own server is threaded, and its DynamoDB checks a condition and applies the write in
separate steps, so two concurrent conditional writes can both succeed. DynamoDB makes each
conditional write atomic, and hubsync's guarantees (leases, single-use keys, rate slots) rely
on that: served one at a time, moto behaves the same way.

Usage: python3 moto_server.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)
