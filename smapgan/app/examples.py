"""Examples as starting values of a tab's components (the rows of ``gr.Examples``): an op's declared
ones (the bundled model's), or a model's own (:func:`read_examples`).

Each input kind turns an example's value into its components' values with its entry of
:data:`EXAMPLE_FIELDS` (or its nearest base kind's: :func:`~.inputs.for_kind`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping, Sequence

from ..intake import images as imageio
from ..ops import spec
from .inputs import WidgetFactory, for_kind
from .intake import preview_image

logger = logging.getLogger(__name__)

EXAMPLES_FOLDER = "examples"
"""A model folder's (or Hub repo's) folder of examples: its images and :data:`EXAMPLES_LISTING`."""
EXAMPLES_LISTING = "examples.json"
"""In :data:`EXAMPLES_FOLDER`: ``{"op name": [example, ...]}``, each example as an op declares its own
(input name to value; images are file names of the folder)."""


@dataclass(frozen=True)
class ModelExamples:
    """The examples a model comes with: the folder their files are in, and each op's examples.

    An op's examples name images of the bundled model's training set, so they are the bundled model's
    (``by_op`` None); another model shows its own or none, never those.
    """

    folder: Path | None = None
    by_op: Mapping[str, Sequence[Mapping[str, Any]]] | None = field(default=None, compare=False)
    """Examples by op name; None: each op's declared examples (whose files are in ``folder``)."""
    problem: str = ""
    """Why the model's examples could not be read ("" when they could, or there are none)."""

    def of(self, found: spec.Op) -> list[Mapping[str, Any]]:
        """The examples of ``found`` for this model (none without a folder)."""
        if self.folder is None:
            return []
        return list(found.examples if self.by_op is None else self.by_op.get(found.name, ()))


def read_examples(folder: Path) -> ModelExamples:
    """A model's own examples: ``folder`` (its :data:`EXAMPLES_FOLDER`) with :data:`EXAMPLES_LISTING`.
    No listing: no examples. A listing that cannot be read: none either, and ``problem`` says why (logged)."""
    listing = folder / EXAMPLES_LISTING
    if not listing.is_file():
        return ModelExamples()
    try:
        by_op = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problem = f"{listing} is not readable JSON ({exc})"
    else:
        if isinstance(by_op, dict) and all(
            isinstance(examples, list) and all(isinstance(e, dict) for e in examples) for examples in by_op.values()
        ):
            return ModelExamples(folder, by_op)
        problem = f"{listing} must map op names to lists of examples (objects of input values)"
    logger.warning("model examples skipped: %s", problem)
    return ModelExamples(problem=problem)


def example_rows(
    found: spec.Op, model: Any, display: int, examples_dir: Path, examples: Sequence[Mapping[str, Any]] | None = None,
    *, any_choice: bool = False,
) -> list[dict[str, Any]]:
    """Each example (default: the op's declared ones; files in ``examples_dir``) as component values keyed
    by API parameter name (unusable ones are logged). ``any_choice``: keep a choice ``model`` does not
    offer (rows that only lay out the examples' columns, for another model's examples)."""
    ui = WidgetFactory(model, display, examples_dir=examples_dir)
    rows = []
    for example in found.examples if examples is None else examples:
        row: dict[str, Any] = {}
        try:
            for item in found.inputs:
                fields = value_fields if any_choice and isinstance(item, spec.ChoiceInput) else for_kind(EXAMPLE_FIELDS, item)
                row.update(fields(ui, item, example.get(item.name)))
        except (imageio.ImageInputError, OSError, ValueError) as exc:
            logger.warning("op %s: example skipped (%s)", found.name, exc)
            continue
        rows.append(row)
    return rows


def value_fields(ui: WidgetFactory, item: spec.Input, value: Any) -> dict[str, Any]:
    """The example's value as its one component's starting value (the kind's default when it gives none)."""
    return {item.name: item.default_value() if value is None else value}


def choice_fields(ui: WidgetFactory, item: spec.ChoiceInput, value: Any) -> dict[str, Any]:
    """An example's choice, if this model offers it (a direction the bundled model learned may be
    missing from another model: that example is skipped rather than shown with a choice not on the list)."""
    if value is not None and value not in item.options(ui.model):
        raise ValueError(f"{item.name} {value!r} is not one of this model's choices")
    return value_fields(ui, item, value)


def image_fields(ui: WidgetFactory, item: spec.ImageInput, value: Any) -> dict[str, Any]:
    """The example's file name(s) as the image components' values, by API parameter name."""
    if item.count == 1:
        return {item.name: None if value is None else example_image(ui, item, value)}
    values = list(value or [])
    return {
        f"{item.name}_{i + 1}": None if i >= len(values) or values[i] is None else example_image(ui, item, values[i])
        for i in range(item.count)
    }


def example_image(ui: WidgetFactory, item: spec.ImageInput, value: Any) -> Any:
    """An image component's value for a file name of the examples folder: what the model sees.

    The name must stay inside the folder (a model's listing is not the app's to trust). No preset mask
    in the app: a layer given with the value cannot be undone (and the editor logs "No draw texture
    found for layer" for it); the user brushes instead.
    """
    assert ui.examples_dir is not None, "examples need the factory's examples_dir"
    if not isinstance(value, str) or PurePath(value).is_absolute() or ".." in PurePath(value).parts:
        raise ValueError(f"{item.name}: example image {value!r} is not a file name inside the examples folder")
    image = preview_image(ui.examples_dir / value, ui.size, ui.display)
    return image if item.mask == "none" else {"background": image, "layers": [], "composite": None}


EXAMPLE_FIELDS: dict[type, Callable[[WidgetFactory, Any, Any], dict[str, Any]]] = {
    spec.Input: value_fields,
    spec.ChoiceInput: choice_fields,
    spec.ImageInput: image_fields,
}
"""Each input kind's ``fields(ui, item, value)``: its components' starting values for an example's value."""
