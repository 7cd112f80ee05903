"""``neon.Network``: a model rewritten as a graph of layers that LRP rules can explain.

The contract between the two halves of neon: converters (:mod:`neon.converters`) build a ``Network``,
the backend (:mod:`neon.rules`, :mod:`neon.propagate`) explains it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from .exceptions import RuleError
from .layers.affine import is_affine
from .layers.top import LogOdds
from .propagate.engine import Propagation, forward, propagate
from .propagate.graph import SUPPORTED_TEXT, Step, classify
from .propagate.kinds import NodeKind
from .rules.base import Context, Rule
from .rules.composites import Composite, LayerInfo, resolve
from .rules.defaults import default_rule

__all__ = ["OUTPUT_KINDS", "SUPPORTED_TEXT", "ModelReference", "Network"]

OUTPUT_KINDS = ("log-odds", "logit", "value", "decision", "cluster logit", "outlier score")


@dataclass
class ModelReference:
    """The model's own computation of what a network explains, for the run-time equivalence check.

    Attributes
    ----------
    compute
        ``compute(x) -> (n, k)``: the model's own code (``decision_function``, ``score_samples``, a torch
        model's forward, ...) on inputs ``x`` (a tensor in the network's dtype and device), giving values
        comparable with ``to_model(network(x))``.
    what
        What ``compute`` calls, for messages (e.g. ``"OneClassSVM.score_samples"``).
    to_model
        Maps the network's outputs into the space of ``compute`` (e.g. class probabilities from
        log-odds: ``sigmoid``); ``None`` for the identity.
    diagnose
        ``diagnose(network, x, tol) -> str``: where network and model part (for the error message), or ``None``.
    """

    compute: Callable[[Tensor], Tensor]
    what: str
    to_model: Callable[[Tensor], Tensor] | None = None
    diagnose: Callable[[Network, Tensor, float], str] | None = None

class Network(nn.Module):
    """A model as a ``torch.fx`` graph of layers with exact forward and LRP rules.

    ``forward(x)`` returns the explained quantity of the original model for every target,
    shape ``(n, n_targets)``: class log-odds or logits, cluster logits, an outlier score, a
    regression value. Nodes may fan out and merge (residual additions, concatenation).

    Parameters
    ----------
    graph_module
        The graph. Its modules must be neon layers or supported torch layers (see :mod:`neon.propagate.graph`).
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
    target_rule
        How the model picks its prediction, the default target: ``target_rule(network, outputs, value)``
        with ``value(node_name)`` the value of any node in the same forward pass; ``None`` for the arg-max
        of the outputs. (An SVC predicts by one-vs-one votes, which the arg-max of its class values need
        not reproduce.)
    reference
        The model's own computation of the explained outputs (:class:`ModelReference`), against which the
        network is checked at run time; ``None`` for networks built by hand.
    default_reference
        The reference point an :class:`neon.Explainer` uses unless told otherwise (``reference="auto"``):
        ``"mean"`` for linear models, ``None`` otherwise.
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
        target_rule: Callable[..., Tensor] | None = None,
        reference: ModelReference | None = None,
        default_reference: Any = None,
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
        self.target_rule = target_rule
        self.reference = reference
        self.default_reference = default_reference
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
        """The explained output for every target, ``(n, n_targets)`` (differentiable, like any module)."""
        out, _ = forward(self.steps, x, keep=False)
        return out

    def predict(self, x: Tensor) -> Tensor:
        """The default target of every sample: the model's prediction (``target_rule``, else the arg-max)."""
        with torch.no_grad():
            out, env = forward(self.steps, x, keep=self.target_rule is not None)
        if self.target_rule is None:
            return out.argmax(dim=1)
        by_name = {node.name: value for node, value in env.items()}
        return self.target_rule(self, out, by_name.__getitem__)

    def activations(self, x: Tensor) -> dict[str, Any]:
        """The value of every node at ``x``, keyed by node name (for inspection: shapes, intermediate outputs)."""
        with torch.no_grad():
            _, env = forward(self.steps, x, keep=True)
        return {node.name: value for node, value in env.items()}

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
    def rule_steps(self) -> list[Step]:
        """The steps that carry a rule (layers, functional activations, sums, functional max pools)."""
        return [s for s in self.steps if s.kind.has_rule]

    def layer_infos(self) -> list[LayerInfo]:
        """What a composite sees of every node that carries a rule, in execution order."""
        infos: list[LayerInfo] = []
        affine_steps = [s for s in self.steps if s.kind is NodeKind.LAYER
                        and (is_affine(s.module) or isinstance(s.module, LogOdds))]
        index = {s.name: i for i, s in enumerate(affine_steps)}
        calls: dict[str, int] = {}  # a module called several times gives one node per call: name later calls apart
        for s in self.rule_steps():
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
        """A rule for every node that carries one, keyed by node name.

        Precedence: the given composite, then the converter's default composite, then the default-rule
        registry (:mod:`neon.rules.defaults`). A rule that cannot be applied to its layer is an error.
        """
        composite = resolve(rules, self.default_rules)
        infos = self.layer_infos()
        chosen = composite.assign(infos)
        fallback = self.default_rules.assign(infos) if (self.default_rules is not None
                                                         and composite is not self.default_rules) else {}
        by_name: dict[str, Rule] = {}
        for step, info in zip(self.rule_steps(), infos):
            rule = chosen.get(info.name) or fallback.get(info.name)
            if rule is None:
                rule = default_rule(step.module if step.kind is NodeKind.LAYER else None, step.kind)
            if rule is None:  # pragma: no cover - the graph admits only layers with a registered rule
                raise RuleError(f"no rule for layer {info.name!r} ({type(step.module).__name__}).")
            if step.kind is NodeKind.LAYER and not rule.supports(step.module):
                raise RuleError(
                    f"rule {rule!r} cannot be applied to layer {info.name!r} ({type(step.module).__name__})."
                )
            by_name[step.name] = rule
        return by_name

    def rules_table(self, rules: dict[str, Rule] | None = None) -> list[dict[str, Any]]:
        """One row per node that carries a rule: ``node``, ``name`` (the module name a composite matches),
        ``kind``, ``operation`` and ``rule``.

        ``rules`` are the rules to show (e.g. :attr:`neon.Explainer.rules_`); default: :meth:`assign_rules`.
        """
        rules = self.assign_rules() if rules is None else rules
        rows = []
        for step, info in zip(self.rule_steps(), self.layer_infos()):
            op = type(step.module).__name__ if step.module is not None else step.label
            rows.append({"node": step.name, "name": info.name, "kind": str(step.kind), "operation": op,
                         "rule": rules.get(step.name)})
        return rows

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
        rule = None if self.target_rule is None else functools.partial(self.target_rule, self)
        return propagate(self.steps, rules, x, target, record=record, baseline=baseline, choose_target=rule)

    # ------------------------------------------------------------------ display
    def summary(self, rules: dict[str, Rule] | None = None) -> str:
        """The network layer by layer: node, operation, and rule."""
        lines = [f"neon.Network: {self.description or 'network'} -> {self.output_kind}"
                 + (f" ({len(self.target_names)} targets)" if self.target_names else "")]
        if self.input_shape:
            lines.append(f"  input shape: {self.input_shape}")
        for s in self.steps:
            if s.kind in (NodeKind.INPUT, NodeKind.OUTPUT, NodeKind.CONST):
                continue
            what = repr(s.module) if s.module is not None else s.label
            what = what.replace("\n", " ")
            rule = rules.get(s.name) if rules else None
            kind = str(s.kind)
            lines.append(f"  {s.name:<22} {kind:<6} {what[:70]:<70} {rule!r}" if rule else
                         f"  {s.name:<22} {kind:<6} {what[:70]}")
        return "\n".join(lines)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("steps", None)  # fx nodes: rebuilt from the graph module when unpickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.steps = classify(self.graph_module)

    def extra_repr(self) -> str:
        return f"output_kind={self.output_kind!r}, description={self.description!r}"
