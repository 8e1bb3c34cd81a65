"""Where an HTTP/1.1 request ends, judged from its bytes as they arrive, so the server can read a
whole request without a thread (worker.py) and give it to gunicorn's parser only once it is
all there. No sockets here: bytes in, a verdict out.

This is framing, not validation. Whatever this module cannot frame with certainty (a repeated or
non-numeric Content-Length, Content-Length with Transfer-Encoding, a coding other than chunked
last, bare-LF line ends in the headers) is handed to gunicorn's parser at once, which refuses
it; a declared body over the size limit is handed over too, for the function to answer 413
without reading it. A chunked body that grows past the limit, or whose chunks are malformed,
is refused here (BODY_TOO_LARGE, BAD_CHUNK): nothing of it would be read.
"""

from __future__ import annotations

import enum
import string

_HEX = frozenset(string.hexdigits.encode())
LIMIT_REQUEST_LINE = 8190  # gunicorn's limit_request_line (gunicorn.conf.py); the URL's bound
MAX_HEADER_BYTES = 65536  # the request line and headers together
MAX_CHUNK_LINE = 8190  # a chunk-size line with extensions; gunicorn's limit_request_field_size


class Verdict(enum.Enum):
    INCOMPLETE = "incomplete"  # wait for more bytes
    READY = (
        "ready"  # hand the bytes to the parser: the request is complete, or the parser judges it
    )
    LINE_TOO_LONG = "line_too_long"  # refused here: the request line is over its limit
    HEADERS_TOO_LARGE = "headers_too_large"  # the header (or trailer) section is over its limit
    BAD_CHUNK = "bad_chunk"  # the chunked body's framing is broken
    BODY_TOO_LARGE = "body_too_large"  # a chunked body grew past max_body_bytes


class RequestFraming:
    """Feed it a connection's bytes; `feed` says when one request is complete.

    `max_line` bounds the request line, `max_header_bytes` the request line and headers
    together, `max_body_bytes` the body (a longer declared one is READY at once: the function
    refuses it unread; a chunked one is BODY_TOO_LARGE). After READY, `data` holds every byte received, the next pipelined request's
    included (the parser keeps what it does not use).
    """

    def __init__(self, *, max_line: int, max_header_bytes: int, max_body_bytes: int):
        self.max_line = max_line
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.data = bytearray()
        self.headers_done = False
        self.expects_continue = False  # the client waits for "100 Continue" before its body
        self.body_too_large = False  # declared over max_body_bytes: never ask for the body
        self._chunked = False
        self._body_end = 0  # for a Content-Length body: where the request ends in `data`
        self._pos = 0  # chunked: where scanning goes on
        self._state = "size"  # chunked: "size", "data", "trailer"
        self._need = 0  # chunked: the current chunk's size
        self._body_bytes = 0  # chunked: decoded size so far

    def feed(self, data: bytes) -> Verdict:
        self.data += data
        if not self.headers_done:
            verdict = self._headers()
            if verdict is not None:
                return verdict
        if self._chunked:
            return self._chunks()
        return Verdict.READY if len(self.data) >= self._body_end else Verdict.INCOMPLETE

    def _headers(self) -> Verdict | None:
        """None once the headers are complete and a body is to follow."""
        data = self.data
        first_eol = data.find(b"\n")
        if (first_eol if first_eol >= 0 else len(data)) > self.max_line + 1:
            return Verdict.LINE_TOO_LONG  # the URL: before the headers' own limit
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if b"\n\n" in data or b"\n\r\n" in data:
                return Verdict.READY  # bare-LF line ends: the parser refuses them
            if len(data) > self.max_header_bytes:
                return Verdict.HEADERS_TOO_LARGE
            return Verdict.INCOMPLETE
        if end + 4 > self.max_header_bytes:
            return Verdict.HEADERS_TOO_LARGE
        request_line, *lines = bytes(data[:end]).split(b"\r\n")
        self.headers_done = True
        fields: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            fields.setdefault(name.strip().lower(), []).append(value.strip(b" \t"))
        lengths = fields.get(b"content-length", [])
        codings = fields.get(b"transfer-encoding", [])
        http11 = request_line.endswith(b"HTTP/1.1")
        if codings:
            last = b",".join(codings).split(b",")[-1].strip(b" \t").lower()
            if lengths or last != b"chunked" or not http11:
                return Verdict.READY  # ambiguous framing: the parser refuses it
            self._chunked = True
            self._pos = end + 4
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                return Verdict.READY  # the parser refuses it
            length = int(lengths[0])
            if length > self.max_body_bytes:
                self.body_too_large = True
                return Verdict.READY  # answered 413 from the header
            self._body_end = end + 4 + length
            if length == 0:
                return Verdict.READY
        else:
            return Verdict.READY  # no body
        expect = b",".join(fields.get(b"expect", [])).lower()
        self.expects_continue = http11 and expect == b"100-continue"
        return None

    def _chunks(self) -> Verdict:
        data = self.data
        while True:
            if self._state == "data":
                end = self._pos + self._need
                if len(data) < end + 2:
                    return Verdict.INCOMPLETE
                if data[end : end + 2] != b"\r\n":
                    return Verdict.BAD_CHUNK
                self._pos, self._state = end + 2, "size"
                continue
            eol = data.find(b"\n", self._pos)  # a size line or a trailer line ends here
            if eol < 0:
                pending = len(data) - self._pos
                if self._state == "trailer":
                    too_long = pending > self.max_header_bytes
                    return Verdict.HEADERS_TOO_LARGE if too_long else Verdict.INCOMPLETE
                return Verdict.BAD_CHUNK if pending > MAX_CHUNK_LINE else Verdict.INCOMPLETE
            if eol == self._pos or data[eol - 1] != 0x0D:
                return Verdict.BAD_CHUNK  # a bare LF, which gunicorn refuses: say so now
            line = bytes(data[self._pos : eol - 1])
            self._pos = eol + 1
            if self._state == "trailer":
                if not line:
                    return Verdict.READY  # the empty line after the last chunk (and trailers)
                continue
            size = line.split(b";", 1)[0].strip(b" \t")
            if not size or len(size) > 16 or not _HEX.issuperset(size):
                return Verdict.BAD_CHUNK
            self._need = int(size, 16)
            if self._need == 0:
                self._state = "trailer"
                continue
            self._body_bytes += self._need
            if self._body_bytes > self.max_body_bytes:
                self.body_too_large = True
                return Verdict.BODY_TOO_LARGE
            self._state = "data"
