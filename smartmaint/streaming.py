"""Streamed responses that fail halfway abort the connection, so no client takes a cut-off file for a whole one."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# SO_LINGER on, zero seconds: close() discards unsent data and sends a TCP reset instead of a FIN.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def _abort(sock: socket.socket | None) -> None:
    if sock is None:  # not under gunicorn (runserver, the test client): the exception is all there is
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        sock.close()
    except OSError:
        pass  # already gone: the client has its error


class AbortBrokenStreamsMiddleware:
    """Reset the connection when a streamed body raises after its headers have gone out.

    The status line (200) is sent before the first row, so an error later cannot change it. gunicorn then
    closes the connection cleanly (FIN) after the rows sent so far: over HTTP/1.1 the missing final chunk
    still tells a careful client, but an HTTP/1.0 client (or a proxy that buffers the body and strips the
    chunking) would see a shorter file that looks whole. A TCP reset is an error to every client.
    gunicorn hands the connection's socket to the app as ``environ["gunicorn.socket"]``; its own close
    afterwards finds the socket closed and does nothing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Files (WhiteNoise's static files) keep their wsgi.file_wrapper path; ASGI streams are not ours.
        if response.streaming and getattr(response, "file_to_stream", None) is None and not response.is_async:
            response.streaming_content = self._guarded(response.streaming_content, request)
        return response

    @staticmethod
    def _guarded(content: Iterator, request) -> Iterator:
        try:
            yield from content
        except Exception:
            # Logged here: the request's own handling has ended, and gunicorn's log would not say which URL.
            logger.exception("Streamed response to %s failed after its headers; connection reset", request.path)
            _abort(request.META.get("gunicorn.socket"))
            raise
