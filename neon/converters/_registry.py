"""Converter registry: which function neuralizes which kind of model, and the one entry point.

A converter is ``converter(model, output=None, **options) -> Network``. It registers the models it
accepts (:func:`register` with a predicate, :func:`register_types` for exact classes) and the outputs
it can explain (``outputs=``): the registry validates ``output=`` once for all converters, with one error
(:class:`neon.exceptions.OutputError`) naming what the model offers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..exceptions import OutputError, UnsupportedModelError
from ..network import Network

Converter = Callable[..., Network]

#: (predicate, converter, description) in registration order.
CONVERTERS: list[tuple[Callable[[Any], bool], Converter, str]] = []

#: Converter modules, imported on first use (the scikit-learn ones import scikit-learn).
CONVERTER_MODULES = ("transformers", "dnn", "kmeans", "density", "svm", "linear", "mlp", "pipeline")


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
    if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
        # torch.compile's wrapper hides the module's forward from torch.fx; the original computes the same
        raise UnsupportedModelError("this is a torch.compile'd model; explain the original module instead: "
                                    "model._orig_mod (it computes the same function).")
    # PyTorch models first: explaining one never imports the scikit-learn converters (and scikit-learn).
    for names in (CONVERTER_MODULES[:2], CONVERTER_MODULES):
        load_converters(names)
        for predicate, converter, _ in CONVERTERS:
            if predicate(model):
                return converter(model, **options)
    raise UnsupportedModelError(_unsupported(model))


#: Where the documentation lists the supported model families (one converter page each).
SUPPORTED_MODELS_DOC = "the converter pages listed in docs/index.md"


def _unsupported(model: Any) -> str:
    """The refusal of a model no converter accepts: its name, and where the supported ones are listed."""
    cls = type(model)
    # the public module path (sklearn.tree, not sklearn.tree._classes)
    module = ".".join(part for part in cls.__module__.split(".") if not part.startswith("_")) or cls.__module__
    name = cls.__name__ if module in ("builtins", "collections") else f"{cls.__name__} ({module}.{cls.__name__})"
    if isinstance(model, Mapping) and model and all(isinstance(v, torch.Tensor) for v in model.values()):
        return (f"neon cannot neuralize this {cls.__name__} of {len(model)} tensors: it is a state_dict (the weights "
                "only, not the model). Build the model, load the weights with model.load_state_dict(state_dict) and "
                "explain the model; or save the whole model with torch.save(model, path).")
    return (f"neon cannot neuralize {name}: it has no exact rewriting as a network in neon. "
            f"neon.supported_models() lists the models neon explains, as does {SUPPORTED_MODELS_DOC}.")
