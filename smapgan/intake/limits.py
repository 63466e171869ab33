"""Every bound on the work one request may cause, in one place.

The app, the API and the CLI check these *before* the work starts, and exceeding one is a
one-line error naming the limit. README "Limits and guarantees" lists them; keep the two in
step. Nothing here imports the rest of smapgan (imageio, the op specs and the app import this).

The per-request pixel budget lives here too: a request opens a :func:`pixel_budget` and every
image decoded for it (inputs, brush layers, previews) is charged *from its header* before a
pixel is decoded, so one request can never decode more than :data:`MAX_REQUEST_PIXELS` in all.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

# ------------------------------------------------------------------------------- images
MAX_BYTES = 50 * 2**20
"""Largest encoded image accepted (50 MiB); also Gradio's upload limit."""
MAX_PIXELS = 40_000_000
"""Largest image (width x height of any frame, page or sub-image), read from its header."""
MAX_FRAMES = 64
"""Most frames/pages/sub-images a file may declare (only the first is used). Counting them walks
at most this many headers: a longer chain is refused when the walk reaches the cap."""
MAX_JPEG_SCANS = 32
"""Most scans a JPEG may have (baseline: 1; a progressive file: about 10). Each scan is a pass over
the whole image: 50,000 repeats of one tiny scan cost a minute of CPU for a 1.4 MB file."""
MAX_SEGMENTS = 20_000
"""Most chunks of a PNG (a 50 MiB file in 4 KiB IDATs has 12,800) or segments of a JPEG. Pillow
reads them one by one: 4 million empty IDAT chunks cost half a minute."""
MAX_REQUEST_PIXELS = 64_000_000
"""Pixels decoded for one request in all (every image, brush layer and preview it reads)."""
MAX_DECODING_PIXELS = 48_000_000
"""Pixels being decoded at once in the whole process (all requests together): a request whose
image does not fit waits for others to finish, so memory stays bounded however many run."""
DECODE_WAIT_S = 60.0
"""How long a request waits for room to decode before it is refused as "busy"."""
MAX_LAYERS = 4
"""Brush layers per editor value (the editor draws on one; a few more are tolerated)."""

# ------------------------------------------------------------------------------- settings
MAX_TEXT_CHARS = 2000
"""Longest text accepted for any non-image setting (points, boxes, choices, numbers)."""
MAX_POINTS = 32
"""Most points in one points input (e.g. the placements of an unaligned transplant)."""
MAX_NUMBER = 2**53
"""Largest magnitude of a free number (a seed): exactly representable as a float and an int."""

# ------------------------------------------------------------------------------- app
MAX_REQUEST_BODY = 1 * 2**20
"""Largest JSON body of an API call (files are uploaded apart and referenced by path)."""
MAX_UPLOAD_BODY = 4 * MAX_BYTES + 2**20
"""Largest upload request (Gradio takes up to 1000 files of MAX_BYTES each in one): four files."""
MAX_SESSION_JOBS = 4
"""Jobs one session (a browser tab, a gradio_client Client) may have queued or running at once."""
MAX_CLIENT_JOBS = 8
"""Jobs one client address (an IPv6 client: its /64) may have queued or running at once, over all its sessions."""
MAX_QUEUE = 64
"""Jobs queued in all (every client together); past it calls get HTTP 503."""
MAX_REFINE_STEPS = 200
"""Most refinement steps per image. The gain comes early: 100 steps fit the bundled model's held-out
faces +9.1 dB PSNR over the encoder (docs/refine_sweep.json); past 200 steps a run costs minutes of a
core for little more."""
MAX_CLIENT_REFINE_GFLOP = 10_000
"""Refinement work one client address may have queued or running at once, in GFLOP (steps x images x
the model's GFLOP per step, counted once per model): about 480 steps of the bundled 64 px model
(20.8 GFLOP a step). A single job over it is admitted when the address has none queued."""
MAX_CLIENT_REFINE_GFLOP_PER_MINUTE = 10_000
"""Refinement work one client address may start per minute (the jobs admitted in the last 60 s),
in GFLOP; a single job over it is admitted when the address admitted none in that minute."""
REFINE_CONCURRENCY = 1
"""Refinement jobs run at once, in a lane of their own: encoder-only edits never queue behind them."""
REQUEST_HEADER_TIMEOUT_S = 10.0
"""A connection whose request line and headers are not complete this long after it opened (or after
its previous response) is closed: uvicorn waits for them forever (a slow-headers attack)."""
BODY_GRACE_S = 10.0
"""Seconds a request body may take before :data:`MIN_BODY_RATE` applies."""
MIN_BODY_RATE = 10_000
"""Bytes per second a request body must average after :data:`BODY_GRACE_S`, and no pause in it may last
longer than that grace: a slower body is dropped with HTTP 408 and its connection closed."""
MAX_SESSIONS = 100
"""Sessions whose state the server keeps (Gradio's ``state_session_capacity``; the least recently used
is dropped past it): each holds its stylemap cache, its last results and a copy of the page's config
(about 0.3 MB, much of which Python keeps after it is freed: 300 sessions left +66 MB)."""
SESSION_IDLE_S = 600
"""Seconds after its last event that a session's state is dropped (none of its jobs queued or running)."""
PREVIEW_CONCURRENCY = 1
"""Upload previews and point clicks decoded at once (they share one queue lane)."""
MAX_BLOB_BYTES = 12 * 2**20
"""Largest canvas blob (background, layer or composite) the image editor may upload."""
MAX_SESSION_BLOBS = 8
"""Canvas blobs one session may hold at once (an edit consumes its own)."""
MAX_SESSION_BLOB_BYTES = 48 * 2**20
"""Bytes of canvas blobs one session may hold at once."""
MAX_BLOB_TOTAL_BYTES = 128 * 2**20
"""Bytes of canvas blobs held for all sessions together (the oldest are dropped past it)."""
BLOB_TTL_S = 600
"""Seconds an unused canvas blob is kept."""


class LimitError(ValueError):
    """A request exceeds one of the limits above; the message (one line) says which."""


_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("smapgan_pixel_budget", default=None)


@contextlib.contextmanager
def pixel_budget(total: int = MAX_REQUEST_PIXELS) -> Iterator[None]:
    """Within this block (one request), :func:`charge_pixels` may charge ``total`` pixels in all."""
    token = _budget.set([total])
    try:
        yield
    finally:
        _budget.reset(token)


def charge_pixels(pixels: int, what: str) -> None:
    """Charge ``pixels`` about to be decoded to the current request (no budget open: no charge)."""
    left = _budget.get()
    if left is None:
        return
    if pixels > left[0]:
        raise LimitError(
            f"{what} would exceed this request's decoding budget of {MAX_REQUEST_PIXELS / 1e6:.0f} megapixels "
            "(all images and brush layers together); send fewer or smaller images"
        )
    left[0] -= pixels


_room = threading.Condition()
_decoding_now = [0]  # pixels being decoded in the whole process, held under _room


@contextlib.contextmanager
def decoding(pixels: int) -> Iterator[None]:
    """Hold room for ``pixels`` being decoded (and converted) until the block ends: a weighted semaphore
    over :data:`MAX_DECODING_PIXELS` (refused as "busy" after :data:`DECODE_WAIT_S`)."""
    pixels = min(max(int(pixels), 0), MAX_DECODING_PIXELS)
    with _room:
        if not _room.wait_for(lambda: _decoding_now[0] + pixels <= MAX_DECODING_PIXELS, DECODE_WAIT_S):
            raise LimitError("the server is busy decoding other images; try again in a moment")
        _decoding_now[0] += pixels
    try:
        yield
    finally:
        with _room:
            _decoding_now[0] -= pixels
            _room.notify_all()
