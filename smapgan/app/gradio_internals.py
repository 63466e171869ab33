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
- :func:`wrap_clean_events`, :func:`drop_queued`, :func:`running_event_ids`, :func:`current_event_id`,
  :func:`current_event_gone` (``Queue.clean_events``, ``active_jobs``, ``Event.alive``,
  ``LocalContext.event_id``): a running function is never told that its client left
  (:mod:`.departures`).
- :func:`newer_job_waiting` (``LocalContext.event_id``, ``Queue.event_queue_per_concurrency_id``,
  ``Event.fn``): a preview's exact render is skipped when the same session's next edit is queued
  (:mod:`.previews`); a running function is told nothing of the queue behind it.
- :func:`move_to_lane` (``EventQueue``, ``Event.concurrency_id``): an event's lane is fixed when it
  is declared; refinement, a setting of every op, needs a lane of its own (:mod:`.gate`).
- :func:`server_connections`, :func:`awaiting_request`, :func:`close_connection` (``Blocks.server``,
  uvicorn's ``ServerState.connections`` and h11 protocol): Gradio builds uvicorn's config itself,
  with no timeout for a request's headers (:mod:`.timeouts`).
- :func:`drop_idle_sessions` (``Blocks.state_holder``): Gradio never drops an idle session, only
  State values with a time to live (:mod:`.sessions`).
- :func:`replace_server_function` (the ``@server`` functions of custom components, documented for
  them, here on a built-in ``ImageEditor``'s ``accept_blobs``): Gradio keeps canvas blobs in one
  unbounded dict shared by every session, with no setting to bound it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Awaitable, Callable

QUEUE_NAMES = ("push", "event_queue_per_concurrency_id", "active_jobs")


def serving_app() -> Any | None:
    """The running app whose event is being handled in this context, or None (a CLI or a direct call)."""
    from gradio.context import LocalContext

    blocks = LocalContext.blocks.get(None)
    return blocks if blocks is not None and getattr(blocks, "is_running", False) else None


def current_request() -> Any | None:
    """The request being handled in this context (Gradio's ``Request``), or None."""
    from gradio.context import LocalContext

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


# ------------------------------------------------------------------------------ departures
# Gradio calls its queue's ``clean_events`` when a client's event stream closes; its public API
# tells a running function nothing (smapgan.app.departures says why each is needed).


def wrap_clean_events(queue: Any, wrapper: Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]) -> bool:
    """Replace the queue's ``clean_events(session_hash=, event_id=)`` by ``wrapper(original)``, once."""
    if getattr(queue, "_smapgan_departures", False):
        return False
    if not hasattr(queue, "clean_events") or not hasattr(queue, "event_ids_to_events"):
        raise RuntimeError("this Gradio version has no Queue.clean_events: smapgan.app.gradio_internals needs updating")
    queue.clean_events = wrapper(queue.clean_events)
    queue._smapgan_departures = True
    return True


def _matches(event: Any, session_hash: str | None, event_id: str | None) -> bool:
    return (session_hash is not None and event.session_hash == session_hash) or (event_id is not None and event._id == event_id)


def drop_queued(queue: Any, session_hash: str | None, event_id: str | None) -> int:
    """Remove the matching jobs that have not started from the queue, at once (no await); how many."""
    dropped = 0
    for lane in queue.event_queue_per_concurrency_id.values():
        for event in [e for e in lane.queue if _matches(e, session_hash, event_id)]:
            lane.queue.remove(event)
            queue.event_ids_to_events.pop(event._id, None)
            dropped += 1
    return dropped


def running_event_ids(queue: Any, session_hash: str | None, event_id: str | None) -> list[str]:
    """The ids of the matching jobs that are running."""
    return [e._id for job in queue.active_jobs if job for e in job if _matches(e, session_hash, event_id)]


def is_live_event(queue: Any, event_id: str) -> bool:
    """Is this job still queued or running?"""
    return event_id in queue.event_ids_to_events


def current_event_id() -> str | None:
    """The id of the queued job being run in this context, or None."""
    from gradio.context import LocalContext

    return LocalContext.event_id.get(None)


def _current_job() -> tuple[Any | None, Any | None]:
    """The queue of the app being served in this context, and the job being run (each or both None)."""
    from gradio.context import LocalContext

    queue, key = getattr(LocalContext.blocks.get(None), "_queue", None), LocalContext.event_id.get(None)
    return queue, (queue.event_ids_to_events.get(key) if queue is not None and key is not None else None)


def is_current_event_live(event_id: str) -> bool:
    """Is this job still queued or running in the app being served in this context?"""
    queue, _ = _current_job()
    return queue is not None and is_live_event(queue, event_id)


def current_event_gone() -> bool:
    """Has the queue marked the job being run as no longer alive (its client left)?"""
    _, event = _current_job()
    return event is not None and not event.alive


def newer_job_waiting() -> bool:
    """Is a job of this session for the same event queued behind the one being run in this context?

    A preview's exact render is skipped once the same person's next edit waits (:mod:`.previews`);
    Gradio's public API tells a running function nothing about the queue behind it.
    """
    queue, current = _current_job()
    if current is None:
        return False
    return any(
        e is not current and e.session_hash == current.session_hash and e.fn is current.fn
        for lane in queue.event_queue_per_concurrency_id.values() for e in lane.queue
    )


def move_to_lane(queue: Any, event_id: str, lane: str, concurrency: int) -> bool:
    """Move a queued job into the lane (Gradio's concurrency id) ``lane`` of ``concurrency`` jobs at once.

    Gradio gives each event one lane, fixed when it is declared; refinement is a setting of every
    op's event, and must not queue in front of the same op's encoder-only edits (issue 29).
    """
    from gradio.queueing import EventQueue

    event = queue.event_ids_to_events.get(event_id)
    if event is None:
        return False
    source = queue.event_queue_per_concurrency_id.get(event.concurrency_id)
    if source is None or event not in source.queue:
        return False  # already started or gone
    target = queue.event_queue_per_concurrency_id.get(lane)
    if target is None:
        target = queue.event_queue_per_concurrency_id[lane] = EventQueue(lane, concurrency)
    source.queue.remove(event)
    event.concurrency_id = lane
    target.queue.append(event)
    return True


# ------------------------------------------------------------------------------ connections
# Gradio builds its uvicorn server's config itself (no header timeout can be set), and keeps the
# server as ``Blocks.server``; uvicorn's ``ServerState.connections`` holds its connection protocols
# (h11's: ``conn``, ``cycle``, ``transport``, ``loop``). smapgan.app.timeouts says why.


def server_running(demo: Any) -> bool:
    """Is ``demo``'s server still serving?"""
    server = getattr(demo, "server", None)
    return bool(getattr(demo, "is_running", False)) and server is not None and not getattr(server, "should_exit", True)


def wait_until_running(demo: Any, within_s: float = 600.0) -> None:
    """Return once ``demo``'s server serves, or after ``within_s`` seconds (its watchers start before it)."""
    for _ in range(int(within_s / 0.1)):
        if server_running(demo):
            return
        time.sleep(0.1)


def server_connections(demo: Any) -> list[Any]:
    """The server's open HTTP connections (uvicorn protocol objects)."""
    state = getattr(getattr(demo, "server", None), "server_state", None)
    return list(getattr(state, "connections", ()))


def awaiting_request(connection: Any) -> tuple[int, int] | None:
    """For a connection still waiting for a complete request line and headers: a key for this wait
    (the connection and its request cycle: a new request is a new wait); None otherwise."""
    conn = getattr(connection, "conn", None)  # an h11.Connection (uvicorn's h11 protocol), by duck typing:
    state = getattr(conn, "their_state", None)  # h11's states are classes (h11.IDLE); h11 is not our dependency
    if getattr(state, "__name__", None) != "IDLE":
        return None
    return id(connection), id(getattr(connection, "cycle", None))


def close_connection(connection: Any) -> None:
    """Close the connection's transport, from the server's event loop."""
    transport, loop = getattr(connection, "transport", None), getattr(connection, "loop", None)
    if transport is not None and loop is not None:
        loop.call_soon_threadsafe(transport.close)


# ------------------------------------------------------------------------------ sessions
# Gradio's ``Blocks.state_holder`` (``session_data``, ``time_last_used``) never drops an idle
# session, only State values with a time to live (smapgan.app.sessions says why it must).


def drop_idle_sessions(demo: Any, idle_s: float) -> int:
    """Remove the sessions unused for ``idle_s`` seconds that have no job queued or running; how many."""
    import datetime

    holder = getattr(demo, "state_holder", None)
    queue = getattr(demo, "_queue", None)
    if holder is None or not hasattr(holder, "session_data"):
        return 0
    busy = {e.session_hash for e in queued_events(queue)} if queue is not None else set()
    busy |= {key for key, ids in (getattr(queue, "pending_event_ids_session", None) or {}).items() if ids}
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=idle_s)
    dropped = 0
    with holder.lock:
        for session_id, used in list(holder.time_last_used.items()):
            if used < cutoff and session_id not in busy:
                holder.session_data.pop(session_id, None)
                holder.time_last_used.pop(session_id, None)
                dropped += 1
    # The queue's own per-session message queues and event-id sets outlive their sessions too (one
    # of each per session that ever joined): drop those of sessions no longer held and not busy.
    if queue is not None:
        messages = getattr(queue, "pending_messages_per_session", {})
        ids = getattr(queue, "pending_event_ids_session", {})
        for session_id in [k for k in list(messages) if k not in holder.session_data and k not in busy]:
            pending = messages.get(session_id)
            if pending is not None and not getattr(pending, "empty", lambda: True)():
                continue  # messages not yet read: its stream may still come for them
            messages.pop(session_id, None)
            ids.pop(session_id, None)
    return dropped
