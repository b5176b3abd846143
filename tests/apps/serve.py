"""Serve one of the test apps on 127.0.0.1, on a port the kernel picks.

Usage: python serve.py django|flask

Prints "listening on 127.0.0.1:PORT" once the socket is bound. Exits when its standard
input closes, so the app stops with the test process that started it, even if that
process is killed.

wsgiref passes every request header to the app, including names spelled with "_", which
Django's runserver and Gunicorn drop. So the tests see exactly what Envoy forwards.
"""

import os
import sys
import threading
from wsgiref.simple_server import make_server


def load_app(name):
    if name == "django":
        from django_site import application
    elif name == "flask":
        from flask_site import app as application
    else:
        sys.exit(f"unknown app {name!r}; use django or flask")
    return application


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    application = load_app(sys.argv[1])
    server = make_server("127.0.0.1", 0, application)
    print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
