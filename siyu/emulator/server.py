"""Serving the emulator: a threaded stdlib server (tests, embedding) or gunicorn (`siyu emulator`).

The state lives in the serving process, so gunicorn runs exactly one worker (gthread, several threads) and
builds the emulator inside that worker after the fork: the callback and saver threads must start there.
"""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from siyu.emulator.core import Emulator

log = logging.getLogger(__name__)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


@dataclass
class RunningServer:
    emulator: Emulator
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.emulator.close()


def serve_in_thread(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start the emulator on host:port (0 = a free port) in a background thread; for tests and embedding."""
    server = make_server(host, port, emulator, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    emulator.start()
    # A short poll interval makes stop() (server.shutdown) quick, which a test suite starting many servers notices.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="emulator-http", daemon=True)
    thread.start()
    return RunningServer(emulator, server, thread)


def serve_threaded(emulator: Emulator, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (the `--server threaded` fallback)."""
    server = make_server(host, port, emulator, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    emulator.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        emulator.close()


def serve_gunicorn(factory: Callable[[], Emulator], bind: str, threads: int) -> None:
    """Serve with gunicorn in the foreground: one worker (the state is in-process), `threads` threads."""
    from gunicorn.app.base import BaseApplication

    holder: dict[str, Emulator] = {}

    def worker_exit(_server: Any, _worker: Any) -> None:
        # Runs in the worker on shutdown: stop the senders and write the last snapshot.
        if "emulator" in holder:
            holder["emulator"].close()

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": bind,
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "accesslog": None,
                "graceful_timeout": 5,
                # A slow injected-latency request must not get the worker killed as hung.
                "timeout": 120,
                "worker_exit": worker_exit,
                # gunicorn >= 25 opens ~/.gunicorn/gunicorn.ctl by default; `siyu serve` runs another gunicorn
                # on the same box, and the two would fight over that one path.
                "control_socket_disable": True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:  # control_socket_disable only exists from gunicorn 25.1
                    self.cfg.set(key, value)

        def load(self) -> Emulator:
            holder["emulator"] = factory().start()
            return holder["emulator"]

    _App().run()
