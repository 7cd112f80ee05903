"""scikit-learn pipelines: affine preprocessing in front of any supported model (docs/theory.md §4).

The preprocessing steps (``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``, ``RobustScaler``,
``PCA``) compose to one affine map ``u = M x + c`` of the raw features ``x``. The final estimator
is neuralized on its own (:func:`neon.neuralize`) and the map is joined to its network so that
relevance lands on the raw features:

1. **folded** into the first layer when that layer is affine (``nn.Linear`` or the log-odds top,
   i.e. linear models, linear SVMs, MLPs): ``W' = W M``, ``b' = W c + b``. The network is again one
   affine layer on ``x`` and its rules apply to raw features. With a reference point the relevance
   ``w'_i (x_i - x~_i) = w_i (u_i - u~_i)`` is the same in raw and scaled coordinates.
2. **per-feature node** in front of a distance model (k-means, OC-SVM, KDE, RBF SVC) when every step
   is a per-feature scaler (``M`` diagonal): :class:`FeatureAffine` ``u_i = s_i x_i + t_i`` passes each
   scaled feature's relevance to its raw feature one to one. The scaling is a per-feature bijection,
   so the midpoint / distance contributions ``(u_i - m_i)^2`` computed in scaled coordinates are the
   contributions of raw feature ``i``: the relevance is identical to that of the final model explained
   on pre-scaled data.
3. **projection node** in front of a distance model when the map mixes features (``PCA``):
   :class:`AffineProjection` with the deep-Taylor root-point rule (Montavon et al., Pattern Recognit.
   2017) at a root ``x0`` with ``M x0 + c = 0`` (the PCA mean, mapped back through the scalers in front
   of it): ``R_i = sum_j (x_i - x0_i) M_ji / u_j R_j``. Since ``u_j = sum_i M_ji (x_i - x0_i)`` exactly,
   the node is exactly conservative (``0 / 0 := 0``).

Any other step (``PolynomialFeatures``, ``FunctionTransformer``, ``ColumnTransformer``, a clipping
``MinMaxScaler`` ...) is refused with an error naming it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, fx, nn

from ..exceptions import UnsupportedModelError
from ..layers.coordinates import AffineProjection, FeatureAffine
from ..layers.top import LogOdds
from ..network import ModelReference, Network
from . import references
from ._registry import neuralize, register

SCALERS = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)
SUPPORTED_STEPS = "StandardScaler, MinMaxScaler (clip=False), MaxAbsScaler, RobustScaler, PCA, 'passthrough'"


# ---------------------------------------------------------------------- steps as affine maps
def _per_feature(step: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(s, t)`` with ``step.transform(x) = s * x + t`` for the supported scalers, else ``None``."""
    d = int(step.n_features_in_)
    one, zero = np.ones(d), np.zeros(d)

    def arr(value: Any, default: np.ndarray) -> np.ndarray:
        return default if value is None else np.asarray(value, dtype=np.float64)

    if isinstance(step, StandardScaler):
        scale = arr(getattr(step, "scale_", None), one)
        mean = arr(step.mean_, zero) if step.with_mean else zero
        return 1.0 / scale, -mean / scale
    if isinstance(step, RobustScaler):
        scale = arr(step.scale_, one) if step.with_scaling else one
        center = arr(step.center_, zero) if step.with_centering else zero
        return 1.0 / scale, -center / scale
    if isinstance(step, MaxAbsScaler):
        return 1.0 / arr(step.scale_, one), zero
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise UnsupportedModelError(
                "MinMaxScaler(clip=True) is not affine (it clips to the feature range); neon supports pipeline "
                f"steps {SUPPORTED_STEPS}."
            )
        return arr(step.scale_, one), arr(step.min_, zero)
    return None


def _pca(step: PCA) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``PCA.transform(x) = M x + c`` (whitening included, as sklearn clips the scale)."""
    P = np.asarray(step.components_, dtype=np.float64)
    mean = np.asarray(step.mean_, dtype=np.float64)
    if step.whiten:
        scale = np.sqrt(np.asarray(step.explained_variance_, dtype=np.float64))
        scale = np.maximum(scale, np.finfo(scale.dtype).eps)
        P = P / scale[:, None]
    return P, -P @ mean


class AffineChain:
    """The composition ``u = M x + c`` of the pipeline's preprocessing steps, and a root point for it."""

    def __init__(self, n_features: int):
        self.M = np.eye(n_features)
        self.c = np.zeros(n_features)
        self.diagonal = True
        self.anchor: np.ndarray | None = None  # a raw-space point where the first PCA is centred

    def add(self, name: str, step: Any) -> None:
        st = _per_feature(step) if type(step) in SCALERS else None
        if st is not None:
            s, t = st
            self.M, self.c = s[:, None] * self.M, s * self.c + t
            return
        if type(step) is PCA:
            P, b = _pca(step)
            if self.anchor is None:
                # The PCA mean in raw coordinates: undo the (per-feature, invertible) steps in front of it.
                s, t = np.diag(self.M), self.c
                self.anchor = (np.asarray(step.mean_, dtype=np.float64) - t) / np.where(s != 0, s, 1.0)
            self.M, self.c = P @ self.M, P @ self.c + b
            self.diagonal = False
            return
        raise UnsupportedModelError(
            f"pipeline step {name!r} ({type(step).__name__}) is not an affine per-feature scaler or PCA; neon "
            f"supports pipelines of {SUPPORTED_STEPS} ending in a supported model (neon.supported_models())."
        )

    def root(self) -> np.ndarray:
        """The point ``x0`` nearest to the anchor with ``M x0 + c = 0`` (an error if there is none)."""
        anchor = self.anchor if self.anchor is not None else np.zeros(self.M.shape[1])
        x0 = anchor - np.linalg.pinv(self.M) @ (self.M @ anchor + self.c)
        residual = np.abs(self.M @ x0 + self.c).max()
        if residual > 1e-8 * max(1.0, np.abs(self.c).max(), np.abs(self.M).max() * np.abs(x0).max()):
            raise UnsupportedModelError(
                "the pipeline's preprocessing has no point that it maps to zero (rank-deficient projection), "
                "so its relevance cannot be redistributed exactly to the raw features."
            )
        return x0


# ---------------------------------------------------------------------- joining to the final network
def _first_affine_node(gm: fx.GraphModule) -> tuple[fx.Node, nn.Linear | LogOdds] | None:
    """The node consuming the input when it is the only consumer, an affine layer, and called once."""
    ph = next(n for n in gm.graph.nodes if n.op == "placeholder")
    users = list(ph.users)
    if len(users) != 1 or users[0].op != "call_module":
        return None
    node = users[0]
    if sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == node.target) != 1:
        return None
    module = gm.get_submodule(node.target)
    return (node, module) if isinstance(module, (nn.Linear, LogOdds)) else None


def _fold(linear: nn.Linear, M: Tensor, c: Tensor) -> nn.Linear:
    W = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else torch.zeros(W.shape[0], dtype=W.dtype)
    folded = nn.Linear(M.shape[1], W.shape[0], dtype=W.dtype, device=W.device)
    with torch.no_grad():
        folded.weight.copy_(W @ M)
        folded.bias.copy_(W @ c + b)
    folded.requires_grad_(False)
    return folded


def _set_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, module)


def _prepend(gm: fx.GraphModule, name: str, module: nn.Module) -> None:
    gm.add_module(name, module)
    ph = next(n for n in gm.graph.nodes if n.op == "placeholder")
    with gm.graph.inserting_after(ph):
        node = gm.graph.call_module(name, (ph,))
    ph.replace_all_uses_with(node, delete_user_cb=lambda user: user is not node)
    gm.graph.lint()
    gm.recompile()


def join(chain: AffineChain, net: Network, d_in: int) -> fx.GraphModule:
    """The final network's graph with the preprocessing folded in or put in front (module docstring)."""
    gm = copy.deepcopy(net.graph_module)
    dtype, device = net.dtype, net.device
    M = torch.as_tensor(chain.M, dtype=dtype, device=device)
    c = torch.as_tensor(chain.c, dtype=dtype, device=device)
    first = _first_affine_node(gm)
    if first is not None:
        node, module = first
        if isinstance(module, LogOdds):
            module.linear = _fold(module.linear, M, c)  # gm is our own deep copy
        else:
            _set_module(gm, str(node.target), _fold(module, M, c))
        gm.recompile()
        return gm
    name = "input_transform"
    while hasattr(gm, name):
        name = "_" + name
    if chain.diagonal:
        _prepend(gm, name, FeatureAffine(torch.diagonal(M).clone(), c))
    else:
        root = torch.as_tensor(chain.root(), dtype=dtype, device=device)
        _prepend(gm, name, AffineProjection(M, c, root))
    return gm


def _is_pipeline(model: Any) -> bool:
    return type(model) is Pipeline


@register(_is_pipeline, description="Pipeline of StandardScaler/MinMaxScaler/MaxAbsScaler/RobustScaler and/or PCA "
          "ending in any supported model (relevance on the raw features)")
def neuralize_pipeline(model: Pipeline, **options: Any) -> Network:
    """A fitted pipeline ``[affine preprocessing..., final model]`` as one network on the raw features.

    ``options`` (e.g. ``output=``) go to the final model's converter. The network's forward equals
    the final model's explained output on ``pipeline[:-1].transform(x)``.
    """
    check_is_fitted(model)
    *pre, (final_name, final) = model.steps
    if final is None or final == "passthrough":
        raise UnsupportedModelError("the pipeline ends in 'passthrough'; neon needs a final model to explain.")
    # Pipeline.n_features_in_ asks the first step, which may be 'passthrough'.
    first = next(step for _, step in model.steps if step is not None and step != "passthrough")
    d_in = int(first.n_features_in_)
    chain = AffineChain(d_in)
    names = []
    for name, step in pre:
        if step is None or step == "passthrough":
            continue
        chain.add(name, step)
        names.append(type(step).__name__)
    net = neuralize(final, **options)
    gm = join(chain, net, d_in) if names else copy.deepcopy(net.graph_module)
    names.append(net.description or type(final).__name__)
    feature_names = getattr(model, "feature_names_in_", None)
    ref = None
    if net.reference is not None:
        final_ref = net.reference
        ref = ModelReference(functools.partial(references.pipeline_values, model, final=final_ref),
                             f"Pipeline({final_ref.what})", final_ref.to_model)
    return Network(
        gm, output_kind=net.output_kind, target_names=net.target_names, input_shape=(d_in,),
        feature_names=None if feature_names is None else [str(f) for f in feature_names],
        default_rules=net.default_rules, chunk_size=net.chunk_size,
        description=f"Pipeline({', '.join(names)})", target_rule=net.target_rule, reference=ref,
        default_reference=net.default_reference,
    )


__all__ = ["AffineChain", "SUPPORTED_STEPS", "join",
           "neuralize_pipeline"]
