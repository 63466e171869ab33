"""Every use of Gradio's undocumented internals, each with the reason its public API does not do.

Gradio (6.x) documents components, events, ``Blocks``, ``launch``/``queue`` and ``gr.Request``;
the rest of :mod:`smapgan.app` uses only those. What the hardening layer (:mod:`.gate`,
:mod:`.blobs`) and the upload check of :mod:`.intake` need beyond them is here, so that a Gradio
upgrade is checked in this one file (:func:`event_queue` raises at startup when a name is gone,
rather than serving without the caps):

- :func:`serving_app`, :func:`current_request` (``gradio.context.LocalContext``): the app and
  the request being served. The public way is a ``gr.Request`` parameter of the event function,
  but the blob store is reached from a component's server function (which takes no request) and
  the file check from conversions the CLI shares, which run outside any app.
- :func:`upload_folder`, :func:`is_in_or_equal` (``gradio.utils``): where Gradio stores uploads.
  With ``preprocess=False`` (every image is decoded by :mod:`smapgan.intake.images`, with its limits)
  Gradio does not check a payload's path, so the app checks it against that folder itself.
- :func:`event_queue`, :func:`queued_events`, :func:`wrap_push` (``Blocks._queue``, its ``push``,
  ``event_queue_per_concurrency_id`` and ``active_jobs``): Gradio caps the queue's length, not
  one client's share of it, and a cap inside the handler would come after the job is queued.
- :func:`event_function`, :func:`is_session_state` (``Blocks.fns``, ``Block.skip_api``): a queued
  job's event and which of its inputs are session states, to check and complete its values.
- :func:`replace_server_function` (the ``@server`` functions of custom components, documented for
  them, here on a built-in ``ImageEditor``'s ``accept_blobs``): Gradio keeps canvas blobs in one
  unbounded dict shared by every session, with no setting to bound it.
"""

from __future__ import annotations

import os
from typing import Any, Awaitable, Callable

QUEUE_NAMES = ("push", "event_queue_per_concurrency_id", "active_jobs")


def serving_app() -> Any | None:
    """The running app whose event is being handled in this context, or None (a CLI or a direct call)."""
    from gradio.context import LocalContext

    blocks = LocalContext.blocks.get(None)
    return blocks if blocks is not None and getattr(blocks, "is_running", False) else None


def current_request() -> Any | None:
    """The request being handled in this context (Gradio's ``Request``), or None."""
    try:
        from gradio.context import LocalContext
    except ImportError:  # pragma: no cover
        return None
    return LocalContext.request.get(None)


def upload_folder() -> str:
    """Where Gradio stores uploaded files (``GRADIO_TEMP_DIR`` or its default)."""
    from gradio import utils

    return utils.get_upload_folder()


def is_in_or_equal(path: str | os.PathLike[str], folder: str) -> bool:
    """True when ``path`` is ``folder`` or inside it, resolved as Gradio resolves the paths it serves."""
    from gradio import utils

    return bool(utils.is_in_or_equal(path, folder))


def event_queue(demo: Any) -> Any:
    """``demo``'s queue, after checking it still has every name the fair queue uses."""
    queue = getattr(demo, "_queue", None)
    for name in QUEUE_NAMES:
        if not hasattr(queue, name):
            raise RuntimeError(f"this Gradio version has no Queue.{name}: smapgan.app.gradio_internals needs updating")
    return queue


def queued_events(queue: Any) -> list[Any]:
    """Events queued or running (each has ``session_hash`` and ``request``)."""
    events = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
    events += [e for job in queue.active_jobs if job for e in job]
    return events


def wrap_push(queue: Any, wrapper: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]) -> bool:
    """Replace the queue's ``push(body, request, username)`` by ``wrapper(original)``, once (False: already)."""
    if getattr(queue, "_smapgan_wrapped", False):
        return False
    queue.push = wrapper(queue.push)
    queue._smapgan_wrapped = True
    return True


def event_function(demo: Any, fn_index: Any) -> Any | None:
    """The event (its ``inputs``) a queued job calls, or None."""
    fns = getattr(demo, "fns", {})
    return fns.get(fn_index) if isinstance(fns, dict) else None


def is_session_state(block: Any) -> bool:
    """A per-session value the browser never sends (Gradio's ``State``: left out of the API)."""
    return bool(getattr(block, "skip_api", False))


def replace_server_function(component: Any, name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` the component's server function ``name`` (``POST /component_server``), on this instance.

    Not a subclass: Gradio writes a ``.pyi`` file next to the source of every Component subclass
    when the class is created, which a read-only install refuses.
    """
    from gradio.components.base import server

    setattr(component, name, server(fn))
