"""``neon.Network``: a model rewritten as a graph of layers that LRP rules can explain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from .composites import Composite, LayerInfo, resolve
from .engine import Propagation, forward, propagate
from .exceptions import RuleError
from .graph import ACTIVATION_MODULES, AVG_POOL_MODULES, MAX_POOL_MODULES, Step, classify
from .layers.affine import is_affine
from .layers.distance import CentroidContrast, SquaredDistance
from .layers.pooling import ReduceMax, ReduceMin
from .layers.top import LogOdds
from .rules import Distance, Epsilon, Midpoint, Pass, Proportional, Rule, SoftMax, SoftMin, WinnerTakesAll
from .rules.base import Context

OUTPUT_KINDS = ("log-odds", "logit", "value", "decision", "cluster logit", "outlier score")


def layer_default_rule(module: nn.Module) -> Rule:
    """The rule a layer gets when no composite says otherwise."""
    if hasattr(module, "default_rule"):
        return module.default_rule()
    if is_affine(module) or isinstance(module, LogOdds):
        return Epsilon()
    if isinstance(module, ACTIVATION_MODULES):
        return Pass()
    if isinstance(module, AVG_POOL_MODULES):
        return Proportional()
    if isinstance(module, MAX_POOL_MODULES):
        return WinnerTakesAll()
    if isinstance(module, ReduceMin):
        return SoftMin(None)
    if isinstance(module, ReduceMax):
        return SoftMax(None)
    if isinstance(module, SquaredDistance):
        return Distance()
    if isinstance(module, CentroidContrast):
        return Midpoint()
    raise RuleError(f"no default rule for {type(module).__name__}.")  # pragma: no cover


class Network(nn.Module):
    """A model as a ``torch.fx`` graph of layers with exact forward and LRP rules.

    ``forward(x)`` returns the explained quantity of the original model for every target,
    shape ``(n, n_targets)``: class log-odds or logits, cluster logits, an outlier score, a
    regression value. Nodes may fan out and merge (residual additions, concatenation).

    Parameters
    ----------
    graph_module
        The graph. Its modules must be neon layers or supported torch layers (see ``neon.graph``).
    output_kind
        What the outputs are: one of ``"log-odds"``, ``"logit"``, ``"value"``, ``"decision"``,
        ``"cluster logit"``, ``"outlier score"``.
    target_names
        A name per output column (class labels, cluster indices).
    input_shape
        The per-sample input shape, if fixed (``(n_features,)`` for tabular models).
    feature_names
        Names of the input features, if known.
    default_rules
        The converter's composite (e.g. the NEON rules of a k-means model).
    chunk_size
        Rows per internal batch when explaining (bounds memory); ``None`` for the whole batch.
    description
        What model this network stands for.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        *,
        output_kind: str = "logit",
        target_names: Sequence[Any] | None = None,
        input_shape: Sequence[int] | None = None,
        feature_names: Sequence[str] | None = None,
        default_rules: Composite | None = None,
        chunk_size: int | None = None,
        description: str = "",
    ):
        super().__init__()
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind={output_kind!r}; use one of {OUTPUT_KINDS}.")
        self.graph_module = graph_module
        self.output_kind = output_kind
        self.target_names = None if target_names is None else list(target_names)
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.feature_names = None if feature_names is None else [str(f) for f in feature_names]
        self.default_rules = default_rules
        self.chunk_size = chunk_size
        self.description = description
        self.steps: list[Step] = classify(graph_module)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ building
    @classmethod
    def sequential(cls, layers: Sequence[tuple[str, nn.Module]], **meta: Any) -> Network:
        """A chain of layers ``[(name, module), ...]`` as a network."""
        root = nn.Module()
        graph = fx.Graph()
        x = graph.placeholder("x")
        for name, module in layers:
            root.add_module(name, module)
            x = graph.call_module(name, (x,))
        graph.output(x)
        return cls(fx.GraphModule(root, graph), **meta)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            out, _ = forward(self.steps, x, keep=False)
        return out

    @property
    def dtype(self) -> torch.dtype:
        for t in list(self.parameters()) + list(self.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    @property
    def n_targets(self) -> int | None:
        return None if self.target_names is None else len(self.target_names)

    # ------------------------------------------------------------------ rules
    def layer_infos(self) -> list[LayerInfo]:
        infos: list[LayerInfo] = []
        affine_steps = [s for s in self.steps if s.kind == "layer" and (is_affine(s.module)
                                                                         or isinstance(s.module, LogOdds))]
        index = {s.name: i for i, s in enumerate(affine_steps)}
        calls: dict[str, int] = {}  # a module called several times gives one node per call: name later calls apart
        for s in self.steps:
            if s.kind not in ("layer", "sum", "max"):
                continue
            name = s.name
            if s.node.op == "call_module":
                target = str(s.node.target)
                seen = calls.get(target, 0)
                calls[target] = seen + 1
                name = target if seen == 0 else f"{target}#{seen}"
            infos.append(LayerInfo(name=name, module=s.module, kind=s.kind,
                                   affine_index=index.get(s.name), n_affine=len(affine_steps)))
        return infos

    def assign_rules(self, rules: Any = None) -> dict[str, Rule]:
        """A rule for every node that needs one, keyed by node name.

        Precedence: the given composite, then the converter's default composite, then each
        layer's own default. A rule that cannot be applied to its layer is an error.
        """
        composite = resolve(rules, self.default_rules)
        infos = self.layer_infos()
        chosen = composite.assign(infos)
        fallback = self.default_rules.assign(infos) if (self.default_rules is not None
                                                         and composite is not self.default_rules) else {}
        by_name: dict[str, Rule] = {}
        for step, info in zip([s for s in self.steps if s.kind in ("layer", "sum", "max")], infos):
            rule = chosen.get(info.name) or fallback.get(info.name)
            if rule is None and step.kind == "layer":
                rule = layer_default_rule(step.module)
            if rule is None:
                continue
            if step.kind == "layer" and not rule.supports(step.module):
                raise RuleError(
                    f"rule {rule!r} cannot be applied to layer {info.name!r} ({type(step.module).__name__})."
                )
            by_name[step.name] = rule
        return by_name

    def fit_rules(self, rules: dict[str, Rule], x: Tensor) -> dict[str, Rule]:
        """Set the data-dependent parameters of ``rules`` from fit data ``x`` (one forward pass)."""
        todo = {name for name, r in rules.items() if r.needs_fit}
        if not todo:
            return dict(rules)
        with torch.no_grad():
            out, env = forward(self.steps, x, keep=True)
        ctx = Context(target=out.argmax(dim=1))
        fitted = dict(rules)
        for step in self.steps:
            if step.name in todo:
                inputs = [env[n] for n in step.inputs]
                fitted[step.name] = rules[step.name].fit(step.module, inputs, env[step.node], ctx)
        return fitted

    def propagate(self, x: Tensor, target: Tensor | None, rules: dict[str, Rule], record: bool = False,
                  baseline: Tensor | None = None) -> Propagation:
        """Explain ``target`` at ``x`` with rules from :meth:`assign_rules` (and :meth:`fit_rules`).

        ``baseline`` (one value per sample, e.g. ``f(x~)``) is subtracted from the initial relevance.
        """
        return propagate(self.steps, rules, x, target, record=record, baseline=baseline)

    # ------------------------------------------------------------------ display
    def summary(self, rules: dict[str, Rule] | None = None) -> str:
        """The network layer by layer: node, operation, and rule."""
        lines = [f"neon.Network: {self.description or 'network'} -> {self.output_kind}"
                 + (f" ({len(self.target_names)} targets)" if self.target_names else "")]
        if self.input_shape:
            lines.append(f"  input shape: {self.input_shape}")
        for s in self.steps:
            if s.kind in ("input", "output", "const"):
                continue
            what = repr(s.module) if s.module is not None else s.label
            what = what.replace("\n", " ")
            rule = rules.get(s.name) if rules else None
            lines.append(f"  {s.name:<22} {s.kind:<6} {what[:70]:<70} {rule!r}" if rule else
                         f"  {s.name:<22} {s.kind:<6} {what[:70]}")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        return f"output_kind={self.output_kind!r}, description={self.description!r}"
