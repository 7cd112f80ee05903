"""Converter registry: which function neuralizes which kind of model, and the one entry point.

A converter is ``converter(model, output=None, **options) -> Network``. It registers the models it
accepts (:func:`register` with a predicate, :func:`register_types` for exact classes) and the outputs
it can explain (``outputs=``): the registry validates ``output=`` once for all converters, with one error
(:class:`neon.exceptions.OutputError`) naming what the model offers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ..exceptions import OutputError, UnsupportedModelError
from ..network import Network

Converter = Callable[..., Network]

#: (predicate, converter, description) in registration order.
CONVERTERS: list[tuple[Callable[[Any], bool], Converter, str]] = []

#: Converter modules, imported on first use (the scikit-learn ones import scikit-learn).
CONVERTER_MODULES = ("dnn", "kmeans", "density", "svm", "linear", "mlp", "pipeline")


def _with_outputs(converter: Converter, outputs: Sequence[str] | None) -> Converter:
    if outputs is None:
        return converter

    @functools.wraps(converter)
    def checked(model: Any, *args: Any, output: str | None = None, **options: Any) -> Network:
        if output is not None and output not in outputs:
            choices = " or ".join(repr(o) for o in outputs)
            raise OutputError(f"output={output!r} is not available for {type(model).__name__}; its explained "
                              f"outputs are {choices} (output=None chooses the default).")
        return converter(model, *args, output=output, **options)

    checked.outputs = tuple(outputs)  # type: ignore[attr-defined]
    return checked


def register(predicate: Callable[[Any], bool], description: str,
             outputs: Sequence[str] | None = None) -> Callable[[Converter], Converter]:
    """Register ``converter(model, output=None, **options) -> Network`` for models where ``predicate(model)``.

    ``outputs`` lists the explained outputs the converter offers (``None``: it validates ``output=`` itself,
    e.g. by handing it on to another converter).
    """

    def wrap(converter: Converter) -> Converter:
        checked = _with_outputs(converter, outputs)
        CONVERTERS.append((predicate, checked, description))
        return checked

    return wrap


def register_types(*types: type, description: str,
                   outputs: Sequence[str] | None = None) -> Callable[[Converter], Converter]:
    """Register a converter for instances of exactly these classes (subclasses are not assumed equivalent)."""
    return register(lambda model: type(model) in types, description, outputs)


def load_converters(names: tuple[str, ...] = CONVERTER_MODULES) -> None:
    """Import the converter modules ``names`` that can be imported (scikit-learn converters need scikit-learn)."""
    for name in names:
        module = f"{__package__}.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module or not (err.name or "").startswith("sklearn"):
                raise


def supported_models() -> list[str]:
    """Descriptions of every model family neon can neuralize."""
    load_converters()
    return [d for _, _, d in CONVERTERS]


def neuralize(model: Any, **options: Any) -> Network:
    """Rewrite ``model`` as a :class:`neon.Network` whose forward equals the model's explained output.

    Parameters
    ----------
    model
        A :class:`neon.Network` (returned as is), a PyTorch ``nn.Module``, or a fitted
        scikit-learn estimator or pipeline of a supported kind (:func:`neon.supported_models`).
    **options
        Converter options, e.g. ``output="logit"`` or ``output="log-odds"``.

    Raises
    ------
    UnsupportedModelError
        The model has no exact neuralization in neon (the message names the model and where the list of
        supported models is).
    OutputError
        ``output=`` names a quantity this model does not have.
    """
    if isinstance(model, Network):
        return model
    # PyTorch models first: explaining one never imports the scikit-learn converters (and scikit-learn).
    for names in (CONVERTER_MODULES[:1], CONVERTER_MODULES):
        load_converters(names)
        for predicate, converter, _ in CONVERTERS:
            if predicate(model):
                return converter(model, **options)
    raise UnsupportedModelError(
        f"neon cannot neuralize {type(model).__name__}. Supported: " + "; ".join(supported_models()) + "."
    )
