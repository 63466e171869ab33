"""An op's declared examples as starting values of its tab's components (the rows of ``gr.Examples``).

Each input kind turns an example's value into its components' values with its entry of
:data:`EXAMPLE_FIELDS` (or its nearest base kind's: :func:`~.inputs.for_kind`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..intake import images as imageio
from ..ops import spec
from .inputs import WidgetFactory, for_kind
from .intake import preview_image

logger = logging.getLogger(__name__)


def example_rows(found: spec.Op, model: Any, display: int, examples_dir: Path) -> list[dict[str, Any]]:
    """Each declared example as component values keyed by API parameter name (unusable ones are logged)."""
    ui = WidgetFactory(model, display, examples_dir=examples_dir)
    rows = []
    for example in found.examples:
        row: dict[str, Any] = {}
        try:
            for item in found.inputs:
                row.update(for_kind(EXAMPLE_FIELDS, item)(ui, item, example.get(item.name)))
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
    """An image component's value for a file name of the examples folder (or a path): what the model sees.

    No preset mask in the app: a layer given with the value cannot be undone (and the editor logs
    "No draw texture found for layer" for it); the user brushes instead.
    """
    assert ui.examples_dir is not None, "examples need the factory's examples_dir"
    image = preview_image(ui.examples_dir / value, ui.size, ui.display)  # an absolute path stays itself
    return image if item.mask == "none" else {"background": image, "layers": [], "composite": None}


EXAMPLE_FIELDS: dict[type, Callable[[WidgetFactory, Any, Any], dict[str, Any]]] = {
    spec.Input: value_fields,
    spec.ChoiceInput: choice_fields,
    spec.ImageInput: image_fields,
}
"""Each input kind's ``fields(ui, item, value)``: its components' starting values for an example's value."""
