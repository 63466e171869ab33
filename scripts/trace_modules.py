"""The smapgan modules one encoder-only local transplant passes through, from the app's endpoint to the PNG.

Builds the app on the bundled model (its default renderer), makes one warm-up edit with other images,
then calls the ``/local_transplant`` endpoint function once with a plain original and a brushed
reference, recording each smapgan module entered (``sys.setprofile``, this thread) in order of first
entry. Prints the count and the list (docs/DESIGN.md quotes them).

    python scripts/trace_modules.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"


def brushed_layer(folder: Path, side: int) -> str:
    """A brush layer over the reference's upper half (RGBA, transparent elsewhere), as the canvas sends it."""
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    layer.paste((255, 42, 109, 153), (side // 10, side // 6, side - side // 10, side // 2))
    path = folder / "layer.png"
    layer.save(path)
    return str(path)


def main() -> int:
    from smapgan.app import build_demo
    from smapgan.defaults import default_model_path
    from smapgan.model import StyleMapGAN
    from smapgan.ops import StylemapCache

    model = StyleMapGAN.from_pretrained(default_model_path())
    demo = build_demo(model, prefill=False)
    endpoint = next(f.fn for f in demo.fns.values() if f.api_name == "local_transplant")
    folder = Path(tempfile.mkdtemp(prefix="trace-"))
    side = Image.open(EXAMPLES / "heart_eyes.png").size[0]
    layer = brushed_layer(folder, side)

    def call(original: str, reference: str) -> Any:
        """The endpoint's call as Gradio makes it (a session's states, the values by parameter name)."""
        values = dict(original={"path": str(EXAMPLES / original)},
                      references_1={"background": {"path": str(EXAMPLES / reference)}, "layers": [{"path": layer}]})
        states = (StylemapCache(), {}, lambda *a, **k: None)
        return lambda: list(endpoint(*states, **values, frames=0))

    call("grinning.png", "blush.png")()  # warm-up: first-call work (preparing the renderer) is not the path
    edit = call("neutral_face.png", "heart_eyes.png")
    entered: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        name = frame.f_globals.get("__name__", "")
        if event == "call" and name.startswith("smapgan") and name not in entered:
            entered.append(name)

    sys.setprofile(profile)
    try:
        edit()
    finally:
        sys.setprofile(None)
    print(f"{len(entered)} modules:")
    for i, name in enumerate(entered, 1):
        print(f"{i:3d} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
