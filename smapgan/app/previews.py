"""An edit's local preview on the page, then its exact render, and a status line saying which is shown.

An op that renders through ``OpContext.render_previewed`` (the local transplant) yields its local render
(the base's normalization statistics, only the changed region recomputed: ``smapgan.fast.local``) before
the exact one when its context has ``previews``. The page asks for it: Run's first step sets the tab's
hidden ``preview`` flag, which the endpoint takes like any API parameter. An API caller leaves it out
and gets the exact render alone (or passes ``preview=True`` to get both, in that order); either way the
last update of a run that is not superseded is the exact render. Once the same session's next edit of
the same op is queued, a run stops after its preview: its exact render would never be seen.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..ops.spec import ImageOutput, Op, OpError, short_repr
from . import gradio_internals as internals
from .inputs import status_text
from .inversion import done_text

PARAM = "preview"
"""The endpoint parameter: show a local preview before the exact render (the page sets it; default off)."""

PREVIEW_TEXT = "Preview (local render); the exact render follows..."
EXACT_TEXT = "Exact render (replaced the local preview)."


def flag(found: Op) -> Any | None:
    """The tab's hidden preview flag (False until Run's first step sets it), for ops that stream."""
    if not found.streams:
        return None
    return gr.Checkbox(False, visible=False, label="Local preview first", elem_id=f"{found.name}-preview-flag")


def wanted(value: Any) -> bool:
    """The ``preview`` parameter as a bool (left out: False)."""
    if value in (None, "", False, "false", "False"):
        return False
    if value in (True, "true", "True"):
        return True
    raise OpError(f"preview must be true or false; got {short_repr(value)}")


def newer_edit() -> bool:
    """Is the same session's next job of this op queued (then this run's exact render is not wanted)?"""
    return internals.newer_job_waiting()


def status(memo: dict[str, Any]) -> str:
    """The status line as a run's image changes: preview or exact while a run that showed a preview goes
    on; otherwise what it says anyway (running, done, or the error). A finished run's line stays its
    "Done" line: the run's last update re-sends its images, which fires this again after the run ended.
    Never ``gr.skip()``: Gradio keeps a component per skip."""
    if "error" in memo:
        return status_text(memo["error"], error=True)
    if "elapsed" in memo:
        return status_text(finished_text(memo))
    if memo.get("preview_s") is None:
        return status_text("Running...")
    return status_text(PREVIEW_TEXT if memo.get("preview") else EXACT_TEXT)


def finished_text(memo: dict[str, Any]) -> str:
    """A finished run's status line: its time, its note, and when its local preview was shown."""
    text = done_text(memo)
    if memo.get("note"):
        text = f"{text} {memo['note']}."
    seconds = memo.get("preview_s")
    return text if seconds is None else f"{text} A local preview was shown after {seconds:.2f} s."


def connect_status(found: Op, outputs: list[Any], session: Any, status_line: Any) -> None:
    """Say on the status line whether the image shown is the preview or the exact render, as it changes."""
    if not found.streams:
        return

    def shown(state: dict) -> str:
        return status((state or {}).get(found.name) or {})

    for output in outputs:
        if isinstance(output.item, ImageOutput):
            output.components[0].change(shown, [session], [status_line], queue=False, api_visibility="private",
                                        show_progress="hidden")
