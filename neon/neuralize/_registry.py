"""Converter registry: which function neuralizes which kind of model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: (predicate, converter, description) in registration order.
CONVERTERS: list[tuple[Callable[[Any], bool], Callable[..., Any], str]] = []


def register(predicate: Callable[[Any], bool], description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``converter(model, **options) -> Network`` for models where ``predicate(model)``."""

    def wrap(converter: Callable[..., Any]) -> Callable[..., Any]:
        CONVERTERS.append((predicate, converter, description))
        return converter

    return wrap


def register_types(*types: type, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a converter for instances of exactly these classes (subclasses are not assumed equivalent)."""
    return register(lambda model: type(model) in types, description)
