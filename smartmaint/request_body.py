"""Request bodies Django's WSGI handler cannot read by itself: chunked and gzip-compressed ones.

Gateways on slow links send ``Content-Encoding: gzip``; HTTP/1.1 clients that stream a body send it chunked,
without a Content-Length. Django reads exactly Content-Length bytes, so a chunked body looked empty (and got a
misleading 400), and a gzip body was parsed as garbage. This WSGI middleware, around Django's application,
reads such a body whole (the server has already undone the chunking), decompresses it, and hands Django a
plain body with its Content-Length. The size limit applies to what Django will see, the decompressed body:
a small gzip bomb is refused (413) before it is inflated past the limit.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable

from django.conf import settings

CHUNK = 64 * 1024
GZIP_OVERHEAD = 1024
# zlib's wbits: 16 + MAX_WBITS reads gzip, 32 + MAX_WBITS detects gzip or zlib (Content-Encoding: deflate).
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}


class BodyError(Exception):
    def __init__(self, status: str, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def max_body_bytes() -> int:
    """The largest body any view reads: ingest's limit, or Django's for forms and other JSON."""
    return max(settings.INGEST_MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _too_large(limit: int) -> BodyError:
    return BodyError(
        "413 Request Entity Too Large",
        "payload_too_large",
        f"The body must be at most {limit} bytes (after decompression); split the batch.",
    )


def _read_all(stream, limit: int) -> bytes:
    """Everything the server gives as the body, refusing it once past ``limit`` bytes."""
    parts, size = [], 0
    while True:
        part = stream.read(CHUNK)
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    decoder = zlib.decompressobj(DECODERS[encoding])
    try:
        data = decoder.decompress(body, limit + 1)
        if len(data) > limit or decoder.unconsumed_tail:
            raise _too_large(limit)
        data += decoder.flush()
    except zlib.error as exc:
        raise BodyError(
            "400 Bad Request", "invalid_encoding", f"The body is not valid {encoding} data: {exc}."
        ) from None
    if len(data) > limit:
        raise _too_large(limit)
    if not decoder.eof:
        raise BodyError("400 Bad Request", "invalid_encoding", f"The {encoding} body is truncated.")
    return data


def normalize_body(environ: dict) -> None:
    """Make a chunked and/or compressed body in ``environ`` a plain one with a Content-Length; raise BodyError."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if not chunked and encoding in ("", "identity"):
        return
    if encoding not in ("", "identity", *DECODERS):
        raise BodyError(
            "415 Unsupported Media Type",
            "unsupported_content_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or an uncompressed body.",
        )
    limit = max_body_bytes()
    # Compressed data is at most a few header bytes larger than what it inflates to.
    read_limit = limit if encoding in ("", "identity") else limit + GZIP_OVERHEAD
    if chunked:
        # The server (gunicorn) undoes the chunking and ends the stream with the body.
        raw = _read_all(environ["wsgi.input"], read_limit)
    else:
        length = environ.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            raise BodyError("400 Bad Request", "invalid_length", "Content-Length must be a whole number.")
        if int(length) > read_limit:
            raise _too_large(limit)
        raw = environ["wsgi.input"].read(int(length))
    body = raw if encoding in ("", "identity") else _decompress(raw, encoding, limit)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("HTTP_CONTENT_ENCODING", None)


class RequestBodyMiddleware:
    """WSGI middleware: see the module's docstring."""

    def __init__(self, application: Callable):
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            normalize_body(environ)
        except BodyError as exc:
            # The API's error shape (drf-standardized-errors); no view has run, so it is written here.
            payload = json.dumps(
                {"type": "client_error", "errors": [{"code": exc.code, "detail": exc.detail, "attr": None}]}
            ).encode()
            start_response(
                exc.status,
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("Connection", "close")],
            )
            return [payload]
        return self.application(environ, start_response)
