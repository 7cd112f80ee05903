"""Composites: which rule goes to which layer.

A composite assigns rules by module name, by position among the affine layers (first / lower /
middle / top), and by layer type, in that order of precedence. The presets are named and
defined as in zennit 0.5.1 (docs/theory.md §2) so that results can be compared one to one;
``lrp0``, ``epsilon`` and :class:`Overview` are neon's own. The transformer presets ``attnlrp`` and
``cp_lrp`` are named as LXT's (docs/theory.md §7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..exceptions import RuleError
from ..layers.affine import ChannelAffine, is_affine
from ..layers.families import AVG_POOL_MODULES, CONV_MODULES
from ..layers.top import LogOdds
from ..propagate.kinds import NodeKind
from .affine import AffineRule, AlphaBeta, Epsilon, Flat, Gamma, ZBox, ZPlus
from .attention import HoldConstant, SoftmaxTaylor, Uniform
from .base import Rule
from .normalization import RMS_NORM, Normalization
from .sums import Proportional

#: Type specifications a composite understands besides module classes.
TYPE_SPECS = {
    "conv": "nn.Conv1d / nn.Conv2d",
    "dense": "nn.Linear and the log-odds top",
    "linear": "conv or dense (zennit's 'Linear' type)",
    "affine": "every affine layer, ChannelAffine (unfolded BatchNorm) included",
    "sum": "residual additions, sums and means",
    "max": "functional max pooling",
    "softmax": "softmax (attention weights): nn.Softmax and softmax functions",
    "product": "products of activations: a * b, matmul, bmm, einsum",
    "norm": "nn.LayerNorm and nn.RMSNorm",
}


@dataclass
class LayerInfo:
    """What a composite sees of one node: its module name, its module, its kind and position."""

    name: str
    module: Any
    kind: NodeKind
    affine_index: int | None = None
    n_affine: int = 0

    @property
    def affine(self) -> bool:
        return self.affine_index is not None


def layer_category(module: Any) -> set[str]:
    """The type specifications a module matches."""
    cats: set[str] = set()
    if isinstance(module, CONV_MODULES):
        cats |= {"conv", "linear", "affine"}
    elif isinstance(module, (nn.Linear, LogOdds)):
        cats |= {"dense", "linear", "affine"}
    elif isinstance(module, ChannelAffine) or is_affine(module):
        cats |= {"affine"}
    return cats


def _matches(spec: Any, info: LayerInfo) -> bool:
    if isinstance(spec, str):
        if spec in (NodeKind.SUM, NodeKind.MAX, NodeKind.PRODUCT):
            return info.kind == spec
        if spec == NodeKind.SOFTMAX:
            return info.kind == spec or isinstance(info.module, nn.Softmax)
        if spec == "norm":
            return isinstance(info.module, (nn.LayerNorm,) + RMS_NORM)
        if spec not in TYPE_SPECS:
            raise RuleError(f"unknown layer type {spec!r}; use a module class or one of {sorted(TYPE_SPECS)}.")
        return spec in layer_category(info.module)
    if isinstance(spec, tuple):
        return any(_matches(s, info) for s in spec)
    if isinstance(spec, type):
        target = info.module.linear if isinstance(info.module, LogOdds) and spec is nn.Linear else info.module
        return isinstance(target, spec)
    if callable(spec):
        return info.module is not None and bool(spec(info.module))
    raise RuleError(f"cannot match layers by {spec!r}; use a module class, a tuple of them, or a type name.")


class Composite:
    """Assign rules to the layers of a :class:`neon.Network`.

    Parameters
    ----------
    by_type
        ``[(spec, rule), ...]``; the first matching entry wins. ``spec`` is a module class, a tuple
        of classes, or one of ``"conv"``, ``"dense"``, ``"linear"``, ``"affine"``, ``"sum"``, ``"max"``.
    first
        ``[(spec, rule), ...]`` for the first affine layer (in execution order) that matches a spec,
        as zennit's ``SpecialFirstLayerMapComposite``.
    by_position
        ``{"first": rule, "lower": rule, "middle": rule, "top": rule}``: the first affine layer, then
        the remaining affine layers split into thirds (the LRP overview's recipe).
    by_name
        ``{module_name: rule}``, e.g. ``{"features.0": ZBox(0, 1), "classifier.6": Epsilon(0)}``.
    name
        A label for summaries.
    """

    def __init__(
        self,
        by_type: Sequence[tuple[Any, Rule]] = (),
        first: Sequence[tuple[Any, Rule]] = (),
        by_position: Mapping[str, Rule] | None = None,
        by_name: Mapping[str, Rule] | None = None,
        name: str | None = None,
    ):
        self.by_type = list(by_type)
        self.first = list(first)
        self.by_position = dict(by_position or {})
        unknown = set(self.by_position) - {"first", "lower", "middle", "top"}
        if unknown:
            raise RuleError(f"unknown positions {sorted(unknown)}; use 'first', 'lower', 'middle', 'top'.")
        self.by_name = dict(by_name or {})
        for rule in [r for _, r in self.by_type + self.first] + list(self.by_position.values()) + list(
            self.by_name.values()
        ):
            if not isinstance(rule, Rule):
                raise RuleError(f"a composite needs neon rules, got {rule!r}.")
        self.name = name or type(self).__name__

    def with_overrides(self, by_name: Mapping[str, Rule]) -> Composite:
        """A copy of this composite with single layers overridden by module name."""
        new = Composite(self.by_type, self.first, self.by_position, {**self.by_name, **by_name},
                        name=self.name)
        return new

    def assign(self, infos: Sequence[LayerInfo]) -> dict[str, Rule]:
        """Rules for the nodes this composite has an opinion on (a subset of ``infos``)."""
        rules: dict[str, Rule] = {}
        affine = [i for i in infos if i.affine]
        # zennit's "first layer": the first affine layer (in execution order) matching a first-map spec.
        first_rule: dict[str, Rule] = {}
        for info in affine:
            match = next((r for s, r in self.first if _matches(s, info)), None)
            if match is not None:
                first_rule[info.name] = match
                break
        n_rest = max(len(affine) - 1, 0)
        cut1, cut2 = round(n_rest / 3), round(2 * n_rest / 3)
        for info in infos:
            rule = self.by_name.get(info.name)
            if rule is None and info.affine and self.by_position:
                i = info.affine_index
                assert i is not None  # info.affine
                pos = "first" if i == 0 else "lower" if i - 1 < cut1 else "middle" if i - 1 < cut2 else "top"
                rule = self.by_position.get(pos)
            if rule is None:
                rule = first_rule.get(info.name)
            if rule is None:
                rule = next((r for s, r in self.by_type if _matches(s, info)), None)
            if rule is not None:
                rules[info.name] = rule
        unknown = set(self.by_name) - {i.name for i in infos}
        if unknown:
            names = ", ".join(sorted(i.name for i in infos if i.kind is NodeKind.LAYER))
            raise RuleError(f"no layer named {sorted(unknown)} in this network; its layers are: {names}.")
        return rules

    def __repr__(self) -> str:
        return self.name


class EpsilonGammaBox(Composite):
    """zennit's ``EpsilonGammaBox``: first conv ZBox(low, high), other convs Gamma(0.25), dense Epsilon."""

    def __init__(self, low: Any = "auto", high: Any = "auto", epsilon: float = 1e-6, gamma: float = 0.25,
                 stabilizer: float = 1e-6):
        super().__init__(
            by_type=[("conv", Gamma(gamma, stabilizer)), (nn.Linear, Epsilon(epsilon)),
                     ("affine", Epsilon(epsilon))],
            first=[("conv", ZBox(low, high, stabilizer))],
            name="EpsilonGammaBox",
        )


class EpsilonPlus(Composite):
    """zennit's ``EpsilonPlus``: convs ZPlus, dense Epsilon."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6):
        super().__init__(by_type=[("conv", ZPlus(stabilizer)), ("affine", Epsilon(epsilon))],
                         name="EpsilonPlus")


class EpsilonPlusFlat(Composite):
    """zennit's ``EpsilonPlusFlat``: first affine layer Flat, convs ZPlus, dense Epsilon."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6):
        super().__init__(by_type=[("conv", ZPlus(stabilizer)), ("affine", Epsilon(epsilon))],
                         first=[("linear", Flat(stabilizer))], name="EpsilonPlusFlat")


class EpsilonAlpha2Beta1(Composite):
    """zennit's ``EpsilonAlpha2Beta1``: convs AlphaBeta(2, 1), dense Epsilon."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6):
        super().__init__(by_type=[("conv", AlphaBeta(2.0, 1.0, stabilizer)), ("affine", Epsilon(epsilon))],
                         name="EpsilonAlpha2Beta1")


class EpsilonAlpha2Beta1Flat(Composite):
    """zennit's ``EpsilonAlpha2Beta1Flat``: first affine layer Flat, convs AlphaBeta(2, 1), dense Epsilon."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6):
        super().__init__(by_type=[("conv", AlphaBeta(2.0, 1.0, stabilizer)), ("affine", Epsilon(epsilon))],
                         first=[("linear", Flat(stabilizer))], name="EpsilonAlpha2Beta1Flat")


class Overview(Composite):
    """The VGG-16 recipe of the LRP overview chapter (Montavon et al. 2019).

    Input layer z^B(low, high); of the remaining affine layers the lower third Gamma(0.25), the
    middle third Epsilon(0.25 * RMS of the layer output, per sample), the top third LRP-0.
    """

    def __init__(self, low: Any = "auto", high: Any = "auto", gamma: float = 0.25, epsilon: float = 0.25):
        super().__init__(
            by_position={"first": ZBox(low, high), "lower": Gamma(gamma),
                         "middle": Epsilon(epsilon, relative=True), "top": Epsilon(0.0)},
            name="Overview",
        )


def lrp0() -> Composite:
    """LRP-0 on every affine layer, and unstabilised proportional splits in pools and sums.

    On a bias-free ReLU network this equals gradient x input and conserves relevance exactly.
    """
    exact = Proportional(0.0)
    return Composite(by_type=[("affine", Epsilon(0.0)), (AVG_POOL_MODULES, exact), ("sum", exact)], name="lrp0")


def epsilon(epsilon: float = 1e-6) -> Composite:
    """LRP-epsilon on every affine layer."""
    return Composite(by_type=[("affine", Epsilon(epsilon))], name=f"epsilon({epsilon:g})")


def attnlrp(epsilon: float = 1e-6) -> Composite:
    """AttnLRP (Achtibat et al., ICML 2024; LXT's ``attnLRP`` maps), docs/theory.md §7.

    Epsilon on affine layers, the proportional split of sums, LayerNorm/RMSNorm as linear maps
    (:class:`~neon.rules.Normalization`), the uniform rule on products of activations, AttnLRP's softmax rule,
    and the identity rule on element-wise non-linearities (the registry's default). ``epsilon`` is every
    stabiliser (``0``: LXT's unstabilised gradient x input).
    """
    return Composite(by_type=[("affine", Epsilon(epsilon)), ("sum", Proportional(epsilon)),
                              (AVG_POOL_MODULES, Proportional(epsilon)), ("norm", Normalization(epsilon)),
                              ("product", Uniform(epsilon)), ("softmax", SoftmaxTaylor())],
                     name=f"attnlrp({epsilon:g})")


def cp_lrp(epsilon: float = 1e-6) -> Composite:
    """CP-LRP (Ali et al., ICML 2022; LXT's ``cp_LRP`` maps): :func:`attnlrp` with the attention weights held
    constant (:class:`~neon.rules.HoldConstant` on every softmax), so relevance flows through the values only."""
    return Composite(by_type=[("affine", Epsilon(epsilon)), ("sum", Proportional(epsilon)),
                              (AVG_POOL_MODULES, Proportional(epsilon)), ("norm", Normalization(epsilon)),
                              ("product", Uniform(epsilon)), ("softmax", HoldConstant())],
                     name=f"cp_lrp({epsilon:g})")


class _SingleRule(Composite):
    """One specialised rule (e.g. an SVC or soft-min rule) for every layer it supports; an error if none."""

    def __init__(self, rule: Rule):
        super().__init__(by_type=[(rule.supports, rule)], name=repr(rule))
        self.rule = rule

    def assign(self, infos: Sequence[LayerInfo]) -> dict[str, Rule]:
        rules = super().assign(infos)
        if not rules:
            kinds = sorted({type(i.module).__name__ for i in infos if i.module is not None})
            raise RuleError(f"{self.rule!r} applies to none of this network's layers ({', '.join(kinds)}).")
        return rules


PRESETS: dict[str, Any] = {
    "epsilon_gamma_box": EpsilonGammaBox,
    "epsilon_plus": EpsilonPlus,
    "epsilon_plus_flat": EpsilonPlusFlat,
    "epsilon_alpha2_beta1": EpsilonAlpha2Beta1,
    "epsilon_alpha2_beta1_flat": EpsilonAlpha2Beta1Flat,
    "lrp0": lrp0,
    "epsilon": epsilon,
    "overview": Overview,
    "attnlrp": attnlrp,
    "cp_lrp": cp_lrp,
}


#: Other spellings of preset names ("AttnLRP", "CPLRP").
_ALIASES = {"attn_lrp": "attnlrp", "cplrp": "cp_lrp"}


def _key(name: str) -> str:
    import re

    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return s.lower().replace("-", "_").replace(" ", "_").replace("lrp_0", "lrp0")


def preset(name: str, **params: Any) -> Composite:
    """A preset composite by name (``"epsilon_gamma_box"``, ``"EpsilonGammaBox"`` and ``"lrp0"`` all work)."""
    key = _key(name)
    factory = PRESETS.get(_ALIASES.get(key, key))
    if factory is None:
        raise RuleError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}.")
    return factory(**params)


def resolve(rules: Any, default: Composite | None = None) -> Composite:
    """Turn the ``rules=`` argument into a composite.

    ``None`` -> ``default`` (without one: :class:`EpsilonGammaBox`); a preset name; a :class:`Composite`; one
    :class:`Rule` for every affine layer; or a dict ``{module_name: rule}`` of overrides on top of ``default``
    (without one: :func:`epsilon`).
    """
    if rules is None:
        # Without a converter default (torch networks): EpsilonGammaBox, chosen by measurement. On scenes whose label
        # depends on one object it put the most relevance on that object of all presets (benchmarks/ground_truth.py,
        # docs/choosing-rules.md); on networks without convolutions it is LRP-epsilon on every affine layer.
        return default if default is not None else EpsilonGammaBox()
    if isinstance(rules, Composite):
        return rules
    if isinstance(rules, str):
        return preset(rules)
    if isinstance(rules, AffineRule):
        return Composite(by_type=[("affine", rules)], name=repr(rules))
    if isinstance(rules, Rule):
        if type(rules).supports is Rule.supports:
            raise RuleError(f"{rules!r} applies to any layer; put it in a Composite to say which layers get it.")
        return _SingleRule(rules)
    if isinstance(rules, Mapping):
        base = default if default is not None else epsilon()
        return base.with_overrides(dict(rules))
    raise RuleError(
        f"rules={rules!r} is not understood; give a preset name ({', '.join(PRESETS)}), a Composite, "
        "a single rule, or a dict {module_name: rule}."
    )
