"""Per-request deadlines: after REQUEST_DEADLINE_S (DECODE_DEADLINE_S for the decode alone) a
request's work is abandoned and it is answered 503 deadline_exceeded, instead of holding a thread
and memory for as long as an image takes.

The deadline of the request a thread serves is a context variable, so the layers below read it
without new parameters: imaging checks it between reads of the upload, admission waits no longer
than it, and an ONNX Runtime run is stopped from a timer thread through RunOptions.terminate
(ONNX Runtime checks the flag between kernels, and raises).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


class DeadlineExceeded(RuntimeError):
    """The request ran out of time; the message says which limit and how to stay under it."""


@dataclass
class Deadline:
    seconds: float
    decode_seconds: float
    setting: str = "REQUEST_DEADLINE_S"  # what sets `seconds`, named in the message
    advice: str = "Send a smaller image or a lower max_size"
    expires: float = 0.0  # time.monotonic()
    _timers: list[threading.Timer] = field(default_factory=list)
    _run_options: Any = None  # onnxruntime.RunOptions, made on the first run

    def __post_init__(self) -> None:
        self.expires = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"The request took over {self.seconds:g} s ({self.setting}) and was abandoned. "
            f"{self.advice}, or retry in a few seconds."
        )


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


@contextmanager
def limit(
    seconds: float,
    *,
    decode_seconds: float,
    setting: str = "REQUEST_DEADLINE_S",
    advice: str = "Send a smaller image or a lower max_size",
) -> Iterator[Deadline]:
    """The deadline for the work inside, `seconds` from now. An exception raised once it has
    passed (an ONNX Runtime run stopped by it, a wait cut short) becomes DeadlineExceeded.
    `setting` and `advice` word its message. Inside another limit, this one replaces it until
    it ends."""
    deadline = Deadline(seconds, decode_seconds, setting, advice)
    token = _current.set(deadline)
    try:
        yield deadline
    except DeadlineExceeded:
        raise
    except Exception as e:
        if deadline.expired():
            raise deadline.exceeded() from e
        raise
    finally:
        _current.reset(token)
        for timer in deadline._timers:
            timer.cancel()


def current() -> Deadline | None:
    return _current.get()


def wait_timeout(timeout_s: float) -> float:
    """`timeout_s`, shortened to what is left of the current deadline."""
    deadline = current()
    return timeout_s if deadline is None else max(0.0, min(timeout_s, deadline.remaining()))


def check() -> None:
    """Raise DeadlineExceeded if the current request's deadline has passed."""
    deadline = current()
    if deadline is not None and deadline.expired():
        raise deadline.exceeded()


def decode_guard() -> Callable[[], None]:
    """A check for the decode starting now: raises DeadlineExceeded after DECODE_DEADLINE_S or
    at the request's deadline, whichever comes first. A no-op outside a request."""
    deadline = current()
    if deadline is None:
        return lambda: None
    start = time.monotonic()
    expires = min(deadline.expires, start + deadline.decode_seconds)
    seconds = deadline.decode_seconds

    def guard() -> None:
        if time.monotonic() > expires:
            if deadline.expired():
                raise deadline.exceeded()
            raise DeadlineExceeded(
                f"Decoding the image took over {seconds:g} s (DECODE_DEADLINE_S) and was "
                "abandoned: it costs far more to decode than its size suggests. Re-save it "
                "(a baseline JPEG or a PNG) or send fewer pixels, and try again."
            )

    return guard


def run_options() -> Any:
    """onnxruntime.RunOptions whose `terminate` is set when the current request's deadline
    passes (None outside a request): pass it to every `session.run` of the request."""
    deadline = current()
    if deadline is None:
        return None
    if deadline._run_options is None:
        import onnxruntime as ort

        options = ort.RunOptions()
        timer = threading.Timer(max(0.0, deadline.remaining()), _terminate, (options,))
        timer.daemon = True
        timer.start()
        deadline._timers.append(timer)
        deadline._run_options = options
    return deadline._run_options


def _terminate(options: Any) -> None:
    options.terminate = True
