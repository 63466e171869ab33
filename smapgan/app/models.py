"""The models one app serves: a list of choices (folders or Hub ids), each loaded on first use
and kept, at most ``max_loaded`` at a time (the least recently used is dropped).

A model in memory is its weights plus its renderer's caches (hundreds of MB at 256 px), so a
Space that offers several cannot keep them all; reloading a dropped one costs its load time
again, nothing else. The bundled model is always a choice, so the app has one offline.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..model import StyleMapGAN
from ..model.hub import HubError, resolve_model_dir
from ..ops.examples import EXAMPLES_DIR
from ..render import Renderer
from .examples import EXAMPLES_FOLDER, ModelExamples, read_examples

logger = logging.getLogger(__name__)

BUNDLED = "bundled"
"""The name the bundled model is offered under."""


@dataclass
class ServedModel:
    """A loaded model, its renderer, its examples, and what the app derived from it (by key)."""

    name: str
    model: StyleMapGAN
    renderer: Renderer
    examples: ModelExamples = field(default_factory=ModelExamples)
    derived: dict[str, Any] = field(default_factory=dict)


def default_loader(source: str, revision: str | None, device: str) -> tuple[StyleMapGAN, Renderer]:
    """Load ``source`` (a folder or Hub id; ``BUNDLED``: the bundled model) with its renderer for ``device``."""
    from ..defaults import default_model_path
    from ..device import renderer_for_device

    path = default_model_path() if source == BUNDLED else source
    model = StyleMapGAN.from_pretrained(path, revision=None if source == BUNDLED else revision)
    # A person looks at a result before the next edit: meanwhile the fast renderer completes its maps.
    return model, renderer_for_device(model, device, fill_when_idle=True)


class ModelChoices:
    """The app's models by name, loaded on first use, at most ``max_loaded`` kept.

    ``sources``: folders or Hub ids in the order offered (the first is the default); the bundled
    model is added last when it is not listed and exists. ``device``: ``auto``, ``cpu`` or ``cuda``
    (:func:`smapgan.device.renderer_for_device`). Each model's examples are its folder's (or Hub
    repo's) ``examples/`` (:func:`smapgan.app.examples.read_examples`); the bundled model's are the
    ops' own, whose files are in ``bundled_examples``.
    """

    def __init__(
        self,
        sources: Sequence[str | None] = (),
        *,
        max_loaded: int = 2,
        device: str = "auto",
        revision: str | None = None,
        loader: Callable[[str, str | None, str], tuple[StyleMapGAN, Renderer]] = default_loader,
        bundled_examples: Path = EXAMPLES_DIR,
    ) -> None:
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be at least 1, got {max_loaded}")
        names = [BUNDLED if s in (None, "", BUNDLED) else str(s) for s in sources]
        if BUNDLED not in names and _bundled_exists():
            names.append(BUNDLED)
        if not names:
            raise FileNotFoundError("no model to serve: the bundled model is missing; pass --model")
        self.names: list[str] = list(dict.fromkeys(names))
        self.max_loaded = max_loaded
        self.device = device
        self.revision = revision
        self._loader = loader
        self.bundled_examples = Path(bundled_examples)
        self._loaded: OrderedDict[str, ServedModel] = OrderedDict()
        self._lock = threading.Lock()  # held for a moment: the table of loaded models
        self._loading = threading.Lock()  # held for a load: one at a time, two at once could hold K+1 models

    @classmethod
    def of(
        cls, model: StyleMapGAN, renderer: Renderer, name: str = "model", examples: ModelExamples | None = None
    ) -> "ModelChoices":
        """One model already loaded (what ``build_demo(model)`` serves): nothing else is offered.
        ``examples``: its examples (default: the ops' own, from the bundled examples folder)."""
        choices = cls([name], loader=_never)
        choices.names = [name]
        served = ServedModel(name, model, renderer, examples or ModelExamples(choices.bundled_examples))
        choices._loaded[name] = served
        return choices

    @property
    def default(self) -> str:
        return self.names[0]

    def loaded(self) -> list[str]:
        """Names of the models in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def peek(self, name: str | None) -> ServedModel | None:
        """The model ``name`` (default: the first) if it is in memory, else None: never loads, never waits
        for a load, does not count as a use (what may run outside the queue: a page's model switch)."""
        with self._lock:
            return self._loaded.get(name or self.default)

    def get(self, name: str | None = None) -> ServedModel:
        """The model ``name`` (default: the first), loaded now if it is not in memory."""
        name = name or self.default
        if name not in self.names:
            raise ValueError(f"model must be one of {', '.join(self.names)}; got {name!r}")
        with self._loading:
            with self._lock:
                served = self._loaded.get(name)
                if served is not None:
                    self._loaded.move_to_end(name)
                    return served
            model, renderer = self._loader(name, self.revision, self.device)
            served = ServedModel(name, model, renderer, self._examples_of(name))
            with self._lock:
                self._loaded[name] = served
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            return served

    def _examples_of(self, name: str) -> ModelExamples:
        """The examples that come with model ``name``: the ops' own for the bundled model, else its folder's
        (or Hub repo's) ``examples/``, none when it has none or they cannot be fetched (logged)."""
        if name == BUNDLED:
            return ModelExamples(self.bundled_examples)
        if Path(name).is_dir():
            return read_examples(Path(name) / EXAMPLES_FOLDER)
        try:
            folder = resolve_model_dir(name, self.revision, allow_patterns=[f"{EXAMPLES_FOLDER}/*"], required_files=())
        except HubError as exc:
            logger.warning("model %s: its examples could not be fetched (%s)", name, exc)
            return ModelExamples(problem=f"its examples could not be fetched ({exc})")
        return read_examples(folder / EXAMPLES_FOLDER)


def _bundled_exists() -> bool:
    from ..defaults import DEFAULT_MODEL

    return (Path(DEFAULT_MODEL) / "model.safetensors").is_file()


def _never(source: str, revision: str | None, device: str) -> tuple[StyleMapGAN, Renderer]:
    raise RuntimeError(f"model {source!r} is not loaded and this app cannot load models")
