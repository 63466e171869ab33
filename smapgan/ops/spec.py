"""Declarative op specs: what an op takes, what it gives, and the function on tensors.

An op plugin is one file that decorates a function with :func:`op` (docs/ops.md has examples); the
registry turns the spec into a Gradio tab, an API endpoint ``/<name>`` and ``smapgan edit <name>``,
and the function only sees tensors (:class:`Picture` for images) and plain Python values. Each
input kind is one :class:`Input` subclass that reads API, Python and CLI values and checks them;
this package knows nothing of the app (which keeps a table from kind to widget,
``smapgan.app.inputs.WIDGETS``).
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Literal, Mapping, Sequence, TypeVar

from ..intake import limits
from .picture import Picture, PictureSource

if TYPE_CHECKING:
    import argparse

    from ..model import StyleMapGAN
    from .context import OpContext

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
MaskMode = Literal["none", "optional", "required"]
OpFunction = Callable[..., Mapping[str, Any] | Iterator[Mapping[str, Any]]]
"""An op's function: ``fn(ctx, **inputs)`` returns ``{output: value}``, or yields such dicts (:meth:`Op.stream`)."""
T = TypeVar("T")


class OpError(ValueError):
    """An op was called with values it cannot use; the message is for the user.

    ``field``: the input the message is about. The message names it ``{field}``, which each front end
    fills in with the name its user knows (:meth:`worded`): the parameter name for Python callers (the
    exception's text), the field's label in the app, its flag in the CLI. ``cli``: the CLI's own
    message where its remedy differs (a region there is a ``--mask`` file, not strokes).
    """

    def __init__(self, message: str, field: "Input | None" = None, cli: str | None = None) -> None:
        self.template, self.field, self.cli = message, field, cli
        super().__init__(self.worded(repr(field.name)) if field is not None else message)

    def worded(self, name: str, cli: bool = False) -> str:
        """The message with ``{field}`` named ``name`` (the CLI's message with ``cli``)."""
        text = self.cli if cli and self.cli is not None else self.template
        return text.replace("{field}", name)  # not str.format: a message may quote braces


class OpSpecError(ValueError):
    """A plugin declared an invalid spec (raised when the plugin is imported)."""


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise OpSpecError(f"{what} name {name!r} must match {NAME_PATTERN.pattern} (lowercase, digits, underscores)")


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Input:
    """Base of every input kind: a name (a Python identifier), a label and a help text.

    A kind is one subclass that owns its behaviour, so that adding a kind is one class: the API and
    Python callers ask it for their value (:meth:`parse`, always through :func:`parse_input`, which
    applies the limits first), the CLI for its flags and values (:meth:`add_cli_arguments`,
    :meth:`cli_value`), and :class:`Op` for its checks against the op that declares it (:meth:`check`).
    The defaults make a ``--set NAME=VALUE`` and a value read by :meth:`parse`; the app shows a kind
    with no widget of its own as a text field.
    """

    name: str
    _: KW_ONLY  # label and info by keyword, so that a kind's own fields follow the name (SliderInput("a", -1, 1))
    label: str = ""
    info: str = ""
    kind: ClassVar[str] = "input"
    needs_context: ClassVar[bool] = False
    """True: its value is made with the op context (:meth:`load`; images are decoded there, once, inside
    :meth:`Op.run`), after every other input has been parsed (a bad setting is reported before any image
    is decoded)."""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def default_value(self, model: "StyleMapGAN | None" = None) -> Any:
        return None

    def parse(self, value: Any, model: "StyleMapGAN | None" = None) -> Any:
        """Turn a value from the CLI (text), the API or Python into what the op function gets."""
        return value

    def describe(self) -> str:
        return self.kind

    def check(self, op_: "Op") -> None:
        """Raise :class:`OpSpecError` when this input does not fit the op declaring it (at import)."""

    def load(self, ctx: "OpContext", value: Any) -> Any:
        """The op's value of a ``needs_context`` input, made with the op context."""
        return parse_input(self, value, ctx.model)

    # ------------------------------------------------------------------------ the CLI
    def add_cli_arguments(self, parser: "argparse.ArgumentParser") -> bool:
        """Add this input's own flags to its op's ``smapgan edit`` sub-command.

        False (the default): it has none and is given as ``--set NAME=VALUE``.
        """
        return False

    def cli_value(self, args: "argparse.Namespace", masks: list[str]) -> Any:
        """What :meth:`Op.run` is given for this input's own flags (``masks``: the ``--mask`` files not
        yet paired); nothing is read or decoded here."""
        raise NotImplementedError(f"{type(self).__name__} adds no CLI flags")


@dataclass(frozen=True)
class ImageInput(Input):
    """An image (center-cropped and resized to the model), optionally with a brush mask.

    ``mask``: "none" (plain image), "optional" (no strokes -> ``Picture.mask`` is
    None) or "required" (the op needs a region: :meth:`Op.run` refuses a missing or
    empty mask with :meth:`empty_mask_message`, for the app, the API and the CLI
    alike). ``count`` > 1 accepts up to that many images (the op gets a list).
    """

    mask: MaskMode = "none"
    count: int = 1
    kind: ClassVar[str] = "image"
    needs_context: ClassVar[bool] = True

    def empty_mask_message(self) -> str:
        """What a user is told when a required mask selects nothing."""
        noun = self.name[:-1] if self.count > 1 and self.name.endswith("s") else self.name
        return f"brush a region on the {noun.replace('_', ' ')} first"

    def describe(self) -> str:
        text = "image" if self.count == 1 else f"1-{self.count} images"
        if self.mask != "none":
            text += f" + {self.mask} mask"
        return text

    def check(self, op_: "Op") -> None:
        if self.count < 1:
            raise OpSpecError(f"op {op_.name!r}: {self.name}.count must be >= 1")

    def load(self, ctx: "OpContext", value: Any) -> Any:
        """:class:`Picture` (a list for ``count`` > 1), decoded here from what :func:`load_picture` reads
        (a :class:`PictureSource`, a file, bytes, PIL image, tensor or Picture) onto the model's device;
        a plain image's mask is not read."""

        def one(v: Any) -> Picture:
            if self.mask == "none" and isinstance(v, PictureSource):
                v = v.image
            pic = ctx.load_picture(v).to(ctx.model.device)
            if self.mask == "required" and not pic.has_mask:
                raise OpError(
                    self.empty_mask_message(), self,
                    cli="{field} needs a region: give a --mask FILE for it whose non-black pixels select it",
                )
            if self.mask == "none" and pic.mask is not None:
                pic = Picture(pic.image, None, pic.key)
            return pic

        if self.count == 1:
            if isinstance(value, (list, tuple)):
                if len(value) > 1:
                    raise OpError(f"{self.name} takes one image, got {len(value)}")
                value = value[0] if value else None
            if value is None:
                raise OpError("{field} needs an image", self)
            return one(value)
        items = [v for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None]
        if len(items) > self.count:
            raise OpError(f"{self.name} takes at most {self.count} images, got {len(items)}")
        if not items:
            raise OpError("{field} needs at least one image", self)
        return [one(v) for v in items]

    def cli_flags(self) -> list[str]:
        """``--<name>``, and the singular too for several images (``--reference`` for ``references``)."""
        flags = [f"--{self.name.replace('_', '-')}"]
        if self.count > 1 and self.name.endswith("s"):
            flags.append(f"--{self.name[:-1].replace('_', '-')}")
        return flags

    def add_cli_arguments(self, parser: "argparse.ArgumentParser") -> bool:
        parser.add_argument(
            *self.cli_flags(),
            dest=f"image_{self.name}",
            action="append" if self.count > 1 else "store",
            required=True,
            metavar="FILE",
            help=self.title + (f" (up to {self.count})" if self.count > 1 else ""),
        )
        return True

    def cli_value(self, args: "argparse.Namespace", masks: list[str]) -> Any:
        """A :class:`PictureSource` per file with its mask file (masks are taken in order), a list for
        ``count`` > 1."""
        given = getattr(args, f"image_{self.name}")
        files = given if isinstance(given, list) else ([given] if given else [])
        if len(files) > self.count:  # before any file is read
            raise OpError(f"{self.name} takes at most {self.count} images, got {len(files)}")
        sources = [PictureSource(path, masks.pop(0) if self.mask != "none" and masks else None) for path in files]
        return sources if self.count > 1 else (sources[0] if sources else None)


class _Number:
    """What the number kinds share: a ``default``, ``integer``, and parsing up to their own :meth:`check_range`."""

    def default_value(self, model: "StyleMapGAN | None" = None) -> Any:
        return int(self.default) if self.integer else float(self.default)

    def parse(self, value: Any, model: "StyleMapGAN | None" = None) -> Any:
        if value is None or value == "":
            return self.default_value()
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise OpError(f"{self.name} must be a number, got {short_repr(value)}") from None
        self.check_range(number, value)
        if self.integer and number != int(number):
            raise OpError(f"{self.name} must be a whole number, got {value!r}")
        return int(number) if self.integer else number


@dataclass(frozen=True)
class SliderInput(_Number, Input):
    """A number in [minimum, maximum]; ``integer`` rounds it.

    ``previews``: the name of a :class:`FramesOutput` rendered along this slider's range (first
    frame at ``minimum``, last at ``maximum``); the app then previews a new value with the nearest
    frame already rendered, without a new run.
    """

    minimum: float = 0.0
    maximum: float = 1.0
    default: float = 0.0
    step: float | None = None
    integer: bool = False
    previews: str = ""
    kind: ClassVar[str] = "slider"

    def check_range(self, number: float, value: Any) -> None:
        if not (self.minimum <= number <= self.maximum):
            raise OpError(f"{self.name} must be in [{self.minimum:g}, {self.maximum:g}], got {number:g}")

    def describe(self) -> str:
        kind = "integer" if self.integer else "number"
        return f"{kind} in [{self.minimum:g}, {self.maximum:g}], default {self.default:g}"

    def check(self, op_: "Op") -> None:
        if self.previews and not any(
            isinstance(o, FramesOutput) and o.name == self.previews for o in op_.outputs
        ):
            raise OpSpecError(f"op {op_.name!r}: {self.name} previews unknown frames output {self.previews!r}")


@dataclass(frozen=True)
class NumberInput(_Number, Input):
    """A free number (e.g. a seed)."""

    default: float = 0
    integer: bool = True
    kind: ClassVar[str] = "number"

    def check_range(self, number: float, value: Any) -> None:
        if not math.isfinite(number) or abs(number) > limits.MAX_NUMBER:
            raise OpError(f"{self.name} must be a finite number of magnitude at most 2**53, got {short_repr(value)}")

    def describe(self) -> str:
        return f"{'integer' if self.integer else 'number'}, default {self.default:g}"


@dataclass(frozen=True)
class ChoiceInput(Input):
    """One of a list of strings; ``choices`` may be a function of the model (e.g. its directions)."""

    choices: Sequence[str] | Callable[["StyleMapGAN"], Sequence[str]] = ()
    default: str | None = None
    kind: ClassVar[str] = "choice"

    def options(self, model: "StyleMapGAN | None" = None) -> list[str]:
        if callable(self.choices):
            return list(self.choices(model)) if model is not None else []
        return list(self.choices)

    def default_value(self, model: "StyleMapGAN | None" = None) -> Any:
        if self.default is not None:
            return self.default
        options = self.options(model)
        return options[0] if options else None

    def parse(self, value: Any, model: "StyleMapGAN | None" = None) -> Any:
        if value is None or value == "":
            value = self.default_value(model)
        options = self.options(model)
        if value not in options:
            if not options:
                raise OpError(f"{self.name}: there is nothing to choose from for this model")
            raise OpError(f"{self.name} must be one of {', '.join(options)}; got {value!r}")
        return value

    def describe(self) -> str:
        if callable(self.choices):
            return "choice (depends on the model)"
        return "one of " + "|".join(self.choices) + (f", default {self.default}" if self.default else "")


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr`` of a user's value, cut short (a 5000-digit number is not worth echoing)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_input(item: Input, value: Any, model: "StyleMapGAN | None" = None) -> Any:
    """``item.parse(value)`` with the limits applied first, and every failure an :class:`OpError`.

    A malformed value (a number for a text, an overflow, a text over ``limits.MAX_TEXT_CHARS``)
    is the caller's mistake, reported in one line; only an op's own exception, once every
    input parsed, is a plugin bug. The app, the API and the CLI all parse through here.
    """
    if isinstance(value, (str, bytes)) and len(value) > limits.MAX_TEXT_CHARS:
        raise OpError(f"{item.name} is {len(value)} characters long; the limit is {limits.MAX_TEXT_CHARS}")
    try:
        return item.parse(value, model)
    except OpError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
        raise OpError(f"{item.name}: expected {item.describe()}, got {short_repr(value)} ({type(exc).__name__})") from None


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in re.split(r"[\s,]+", text.strip()) if v]
    except ValueError:
        raise OpError(f"{what}: expected numbers separated by commas, got {short_repr(text)}") from None


@dataclass(frozen=True)
class PointsInput(Input):
    """Points ``x,y`` in fractions of the image side (0..1); the app places them by clicks on ``on``.

    Text form: ``"0.5,0.3; 0.2,0.3"``.
    """

    on: str = ""
    kind: ClassVar[str] = "points"

    def default_value(self, model: "StyleMapGAN | None" = None) -> Any:
        return []

    def parse(self, value: Any, model: "StyleMapGAN | None" = None) -> Any:
        if value is None or value == "" or value == []:
            return []
        parts = value.split(";") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            raise OpError(f"{self.name}: expected points 'x,y; x,y', got {short_repr(value)}")
        parts = [p for p in parts if not isinstance(p, str) or p.strip()]
        if len(parts) > limits.MAX_POINTS:
            raise OpError(f"{self.name}: {len(parts)} points; the limit is {limits.MAX_POINTS}")
        pairs = [_floats(p, self.name) if isinstance(p, str) else list(p) for p in parts]
        points = []
        for pair in pairs:
            if len(pair) != 2 or not all(0.0 <= float(v) <= 1.0 for v in pair):
                raise OpError(f"{self.name}: each point is x,y with both in [0,1], got {pair}")
            points.append((float(pair[0]), float(pair[1])))
        return points

    def describe(self) -> str:
        return f"points 'x,y; x,y' in [0,1] (click on {self.on})" if self.on else "points 'x,y; x,y' in [0,1]"

    def check(self, op_: "Op") -> None:
        _check_placed_on(self, self.on, op_)


@dataclass(frozen=True)
class BoxInput(Input):
    """A rectangle ``x0,y0,x1,y1`` in fractions of the image side, or nothing."""

    on: str = ""
    kind: ClassVar[str] = "box"

    def parse(self, value: Any, model: "StyleMapGAN | None" = None) -> Any:
        if value is None or value == "" or value == ():
            return None
        if not isinstance(value, (str, list, tuple)):
            raise OpError(f"{self.name}: a box is x0,y0,x1,y1, got {short_repr(value)}")
        numbers = _floats(value, self.name) if isinstance(value, str) else [float(v) for v in value]
        if len(numbers) != 4:
            raise OpError(f"{self.name}: a box is x0,y0,x1,y1, got {value!r}")
        x0, y0, x1, y1 = numbers
        if not all(0.0 <= v <= 1.0 for v in numbers) or x1 <= x0 or y1 <= y0:
            raise OpError(f"{self.name}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {value!r}")
        return (x0, y0, x1, y1)

    def describe(self) -> str:
        return "box 'x0,y0,x1,y1' in [0,1] (optional)"

    def check(self, op_: "Op") -> None:
        _check_placed_on(self, self.on, op_)


def _check_placed_on(item: Input, on: str, op_: "Op") -> None:
    if on and on not in {i.name for i in op_.inputs}:
        raise OpSpecError(f"op {op_.name!r}: {item.name} is placed on unknown input {on!r}")


# ---------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class Output:
    name: str
    label: str = ""
    kind: ClassVar[str] = "output"

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class ImageOutput(Output):
    """One image: a (1,3,S,S) tensor in [-1,1] (clamped when saved)."""

    kind: ClassVar[str] = "image"


@dataclass(frozen=True)
class FramesOutput(Output):
    """A sequence of images (list of (1,3,S,S) tensors); shown as a gallery and an animated GIF."""

    duration_ms: int = 100
    kind: ClassVar[str] = "frames"


@dataclass(frozen=True)
class NumbersOutput(Output):
    """Named numbers (dict[str, float]), e.g. metrics."""

    kind: ClassVar[str] = "numbers"


def growing(name: str, items: Iterable[T]) -> Iterator[dict[str, list[T]]]:
    """``{name: the items so far}`` after each item, or ``{name: []}`` once when there are none.

    How a streaming op yields a list output (a :class:`FramesOutput`) while it is computed:
    ``yield from growing("animation", ctx.iter_path(base, edited, ts))``. Every dict holds a
    new list, so a caller that keeps an earlier state (the app shows it while the next frame
    renders) never sees it change afterwards.
    """
    so_far: list[T] = []
    for item in items:
        so_far = [*so_far, item]
        yield {name: so_far}
    if not so_far:
        yield {name: []}


# --------------------------------------------------------------------------------- op
@dataclass(frozen=True, eq=False)
class Op:
    """A registered editing op: the spec plus the function ``fn(ctx, **inputs) -> {output: value}``
    (or a generator of such dicts: :meth:`stream`)."""

    name: str
    fn: OpFunction
    title: str = ""
    description: str = ""
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    examples: tuple[Mapping[str, Any], ...] = ()
    order: int = 100
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "op")
        if not self.outputs:
            raise OpSpecError(f"op {self.name!r} declares no outputs")
        seen: set[str] = set()
        for item, kind in [(i, Input) for i in self.inputs] + [(o, Output) for o in self.outputs]:
            if not isinstance(item, kind):
                raise OpSpecError(f"op {self.name!r}: {item!r} is not an {kind.__name__}")
            _check_name(item.name, f"op {self.name!r}: input/output")
            if item.name in seen:
                raise OpSpecError(f"op {self.name!r}: the name {item.name!r} is used twice")
            seen.add(item.name)
        for item in self.inputs:
            item.check(self)
        names = {i.name for i in self.inputs}
        params = inspect.signature(self.fn).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        missing = [n for n in names if n not in params and not takes_kwargs]
        if missing:
            raise OpSpecError(f"op {self.name!r}: its function does not accept {', '.join(sorted(missing))}")
        if not self.title:
            object.__setattr__(self, "title", self.name.replace("_", " ").capitalize())
        if not self.description:
            object.__setattr__(self, "description", inspect.getdoc(self.fn) or "")

    def input(self, name: str) -> Input:
        for item in self.inputs:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def image_inputs(self) -> list[ImageInput]:
        return [i for i in self.inputs if isinstance(i, ImageInput)]

    @property
    def streams(self) -> bool:
        """True when the function is a generator: it yields its outputs as they become ready.

        The app gives such an op a streaming endpoint (the image is shown while the frames are
        still rendering); :meth:`stream` and :meth:`run` take either kind of function.
        """
        return inspect.isgeneratorfunction(inspect.unwrap(self.fn))

    def run(self, ctx: "OpContext", **values: Any) -> dict[str, Any]:
        """Validate and fill the inputs, call the function, check the outputs: the complete result.

        Images may be given as what the app and the CLI hand over (:class:`PictureSource`: a file and
        its mask's sources), as a path, bytes, PIL image or tensor, or as :class:`Picture` (lists for
        ``count`` > 1); they are decoded here, once, within the request's pixel budget. For a
        streaming op this is the last state of :meth:`stream` (callers that only want the
        result, the CLI among them, need not know whether an op streams).
        """
        result: dict[str, Any] = {}
        for result in self.stream(ctx, **values):  # at least one state, the last complete, or an error
            pass
        return result

    def stream(self, ctx: "OpContext", **values: Any) -> Iterator[dict[str, Any]]:
        """Like :meth:`run`, but yield the outputs known so far after each step of the op.

        A plain function is one step: its checked dict is yielded once. A generator function
        yields partial dicts (``yield {"image": image}``, then ``yield {"animation": frames}``
        as frames come, see :func:`growing`); each is merged into what came before, and the
        merged state (declared outputs only, in their order) is yielded, so the last state
        is :meth:`run`'s result. Once the function ends, a missing output is a ``TypeError``
        naming it, as for a plain function. Closing this generator early closes the op's.
        The inputs are checked when the first state is asked for.
        """
        result = self.fn(ctx, **self._load_inputs(ctx, values))
        if isinstance(result, Mapping):
            yield self._check_outputs(result, "did not return")
            return
        if not isinstance(result, Iterator):
            raise TypeError(
                f"op {self.name!r} must return a dict of outputs or yield dicts of outputs, got {type(result).__name__}"
            )
        state: dict[str, Any] = {}
        try:
            for part in result:
                if not isinstance(part, Mapping):
                    raise TypeError(f"op {self.name!r} yielded {short_repr(part)}, not a dict of outputs")
                state.update((o.name, part[o.name]) for o in self.outputs if o.name in part)
                yield {o.name: state[o.name] for o in self.outputs if o.name in state}
        finally:
            close = getattr(result, "close", None)
            if close is not None:  # a consumer that stopped early: the op's generator ends too
                close()
        self._check_outputs(state, "ended without yielding")

    def _load_inputs(self, ctx: "OpContext", values: Mapping[str, Any]) -> dict[str, Any]:
        """Every input's value for the function: settings parsed and checked first, then images decoded
        within one pixel budget (:func:`limits.pixel_budget`); kept as ``ctx.inputs``."""
        unknown = set(values) - {i.name for i in self.inputs}
        if unknown:
            raise OpError(f"op {self.name!r} has no input {', '.join(sorted(unknown))}")
        kwargs = self.parse_settings(values, ctx.model)  # cheap checks first, then decode images
        with limits.pixel_budget():
            for item in self.inputs:
                if item.needs_context:
                    kwargs[item.name] = item.load(ctx, values.get(item.name))
        ctx.inputs = {item.name: kwargs[item.name] for item in self.inputs}
        return ctx.inputs

    def parse_settings(self, values: Mapping[str, Any], model: "StyleMapGAN | None" = None) -> dict[str, Any]:
        """Parse and check every input made without the op context (defaults filled in)."""
        return {i.name: parse_input(i, values.get(i.name), model) for i in self.inputs if not i.needs_context}

    def _check_outputs(self, result: Mapping[str, Any], failed: str) -> dict[str, Any]:
        """The declared outputs of ``result`` in order; a missing one is the plugin's bug (``TypeError``,
        ``op 'name' <failed> a, b``)."""
        missing = [o.name for o in self.outputs if o.name not in result]
        if missing:
            raise TypeError(f"op {self.name!r} {failed} {', '.join(missing)}")
        return {o.name: result[o.name] for o in self.outputs}

    def usage(self) -> str:
        """One line per input, for ``smapgan ops`` and the CLI help."""
        lines = [f"{i.name}: {i.describe()}" + (f" - {i.info}" if i.info else "") for i in self.inputs]
        lines += [f"-> {o.name}: {o.kind}" for o in self.outputs]
        return "\n".join(lines)


def op(
    *,
    name: str,
    inputs: Sequence[Input],
    outputs: Sequence[Output],
    title: str = "",
    description: str = "",
    examples: Sequence[Mapping[str, Any]] = (),
    order: int = 100,
) -> Callable[[OpFunction], Op]:
    """Decorator turning ``fn(ctx, **inputs)`` into an :class:`Op` (nothing is registered globally:
    discovery finds the ``Op`` objects in the plugin's module).

    ``examples``: dicts of input name -> value; image values are file names of
    ``smapgan/assets/examples`` (or paths), mask values a box ``(x0,y0,x1,y1)``
    in fractions or a mask file, given as ``"<input>_mask"`` (a list for ``count`` > 1).
    ``order`` sorts the app's tabs and ``smapgan ops`` (then discovery order).
    """

    def wrap(fn: OpFunction) -> Op:
        return Op(
            name=name,
            fn=fn,
            title=title,
            description=description,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            examples=tuple(examples),
            order=order,
            source=getattr(fn, "__module__", ""),
        )

    return wrap
