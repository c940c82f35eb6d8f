#!/usr/bin/env python3
"""Target service for the "missing exchange file" tutorial (Python 3 stdlib only).

A background thread writes the current date and time into an exchange file
every few seconds; each GET returns the file's content.

Two variants, as in the Chaos Toolkit tutorial:

* broken (default): reads the exchange file without checking it exists, so a
  missing file raises and the WSGI server answers 500 "A server error occurred".
* fixed (``--fixed``): checks the file first and answers 503 "Exchange file is
  not ready" (try again later) while it is missing.

Run with (from the repository root):

    python3 examples/exchange-file/service.py [--fixed] [--port 8089] [--file /tmp/faultline-exchange.dat] [--pid-file PATH]

The port and the file default to what the experiment reads, `SERVICE_URL` and
`EXCHANGE_FILE`, when they are set. With `--pid-file`, the service writes its own
process id there once it listens, and removes the file once its port is closed
again: a script waits for the file to appear before running the experiment, and
stops the service by that PID (not by a shell job, which may be a wrapper such as
a pyenv shim), waiting for the file to go before starting the next service.
"""

import argparse
import io
import os
import signal
import sys
import threading
from datetime import datetime
from urllib.parse import urlsplit
from wsgiref.simple_server import make_server


def update_exchange_file(path: str, interval: float, stop: threading.Event) -> None:
    """Write the current date and time into the exchange file every `interval` seconds.

    The file is (re)created when it does not exist, like the tutorial's writer.
    """
    while not stop.is_set():
        with io.open(path, "w") as f:
            f.write(datetime.now().isoformat())
        stop.wait(interval)


def broken_app(exchange_file: str):
    """The service "as it is now": it assumes the exchange file is always there."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-type", "text/plain")])
        with io.open(exchange_file) as f:
            return [f.read().encode("utf-8")]

    return app


def fixed_app(exchange_file: str):
    """The fixed service: a missing exchange file means 503, "try again later"."""

    def app(environ, start_response):
        if not os.path.exists(exchange_file):
            start_response("503 Service Unavailable", [("Content-type", "text/plain")])
            return [b"Exchange file is not ready"]

        start_response("200 OK", [("Content-type", "text/plain")])
        with io.open(exchange_file) as f:
            return [f.read().encode("utf-8")]

    return app


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def default_port() -> int:
    """The port of $SERVICE_URL (what the experiment calls), else 8089."""
    url = os.environ.get("SERVICE_URL")
    if url:
        port = urlsplit(url).port
        if port is not None:
            return port
    return 8089


def write_pid_file(path: str) -> None:
    """Write this process's id to `path`, whole or not at all (a reader polls it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true",
                        help="run the fixed variant (503 when the exchange file is missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port(),
                        help="port to listen on (default: the port of $SERVICE_URL, else 8089)")
    parser.add_argument("--file",
                        default=os.environ.get("EXCHANGE_FILE") or "/tmp/faultline-exchange.dat",
                        help="path of the exchange file "
                             "(default: $EXCHANGE_FILE, else /tmp/faultline-exchange.dat)")
    parser.add_argument("--pid-file",
                        help="write this process's id here once listening; removed at exit")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between two writes of the exchange file (default 10)")
    args = parser.parse_args(argv)

    exchange_file = os.path.abspath(args.file)
    app = fixed_app(exchange_file) if args.fixed else broken_app(exchange_file)
    variant = "fixed" if args.fixed else "broken"

    stop = threading.Event()
    writer = threading.Thread(target=update_exchange_file,
                              args=(exchange_file, args.interval, stop), daemon=True)
    writer.start()

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    httpd = make_server(args.host, args.port, app)
    print(f"Listening on http://{args.host}:{args.port}/ ({variant} variant, pid {os.getpid()}), "
          f"exchange file {exchange_file}, rewritten every {args.interval:g} s", flush=True)
    try:
        if args.pid_file:
            write_pid_file(args.pid_file)
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        httpd.server_close()
        # Removed only once the port is closed: its absence means "free to restart".
        if args.pid_file:
            try:
                os.remove(args.pid_file)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
