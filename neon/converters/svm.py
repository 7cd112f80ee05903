"""Support vector classifiers as networks: RBF ``SVC`` (NEON, Bley et al. 2025), linear ``SVC`` and ``LinearSVC``.

RBF kernel (docs/theory.md §4): every one-vs-one class pair ``(a, b)`` becomes the log-ratio
``g_ab = logsumexp_i(-gamma z_i) - logsumexp_j(-gamma z_j)`` of its two kernel sums
(:class:`neon.layers.RBFContrast`), which has the sign of libsvm's pairwise decision function; the
class value is ``f_c = min_{c' != c} g_cc'`` (:class:`neon.layers.ReduceMin`, hard minimum forward,
soft-min redistribution with ``beta = 1``). Linear kernel: the pairwise decision functions are one
affine layer, followed by the same minimum. ``LinearSVC``: one affine layer whose outputs are
``decision_function``.

Binary models have two outputs ``[-g, g]`` (``[-f, f]`` for linear ones), the second with the sign
(and, for linear models, the value) of ``decision_function``; the default target, the arg-max, is the
predicted class. For more classes the default target is what ``predict`` returns, libsvm's one-vs-one vote
with its tie-break (or scikit-learn's ``break_ties``), which is not always the arg-max of ``f_c`` (where
no class beats all others); the explained quantity for that class is still ``f_c``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from ..exceptions import UnsupportedModelError
from ..layers.kernel import RBFContrast
from ..layers.pairs import class_pairs, oriented_pairs, ovo_votes, ovr_decision
from ..layers.pooling import ReduceMin
from ..network import Network
from ..rules import SoftMin
from ..rules.composites import Composite
from . import references
from ._registry import register_types

try:  # scikit-learn is optional for neon as a whole
    from sklearn.svm import SVC, LinearSVC, NuSVC
    from sklearn.utils.validation import check_is_fitted
except ImportError:  # pragma: no cover
    SVC = LinearSVC = NuSVC = None

SUPPORTED_KERNELS = "kernel='rbf' (NEON, Bley et al. 2025) and kernel='linear' (one affine layer)"

#: Stiffness of the soft-min that redistributes f_c = min_c' g_cc' over the class pairs (units of g).
PAIR_BETA = 1.0


def _as_dense(a: Any) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


def _meta(model: Any) -> dict[str, Any]:
    names = getattr(model, "feature_names_in_", None)
    return {
        "target_names": list(model.classes_),
        "input_shape": (int(model.n_features_in_),),
        "feature_names": None if names is None else [str(f) for f in names],
        "description": type(model).__name__,
    }


def ovo_pairs(model: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]:
    """libsvm's one-vs-one layout of a fitted ``SVC``, one entry per pair ``(a, b)``, ``a < b``.

    Returns ``(pos_index, pos_coef, neg_index, neg_coef, intercept)``: the support vectors of class
    ``a`` with non-zero coefficient (all ``> 0``), those of class ``b`` (all ``< 0``), and the
    intercept, oriented so that ``sum pos_coef k + sum neg_coef k + intercept > 0`` votes for ``a``.
    sklearn stores the coefficient of a class-``a`` support vector for the pair ``(a, b)`` in row
    ``b - 1`` of ``dual_coef_`` and that of a class-``b`` one in row ``a``; for binary models it
    negates ``dual_coef_`` and ``intercept_`` so that positive means ``classes_[1]``.
    """
    dual = _as_dense(model.dual_coef_)
    intercept = np.asarray(model.intercept_, dtype=np.float64).ravel()
    k = len(model.classes_)
    sign = -1.0 if k == 2 else 1.0
    starts = np.r_[0, np.cumsum(model.n_support_)]
    pairs = []
    for p, (a, b) in enumerate(class_pairs(k)):
        ia = np.arange(starts[a], starts[a + 1])
        ib = np.arange(starts[b], starts[b + 1])
        ca, cb = sign * dual[b - 1, ia], sign * dual[a, ib]
        pairs.append((ia[ca != 0], ca[ca != 0], ib[cb != 0], cb[cb != 0], float(sign * intercept[p])))
    return pairs


def _rbf_predict(network: Network, out: Tensor, value: Callable[[str], Tensor], break_ties: bool) -> Tensor:
    """The class ``SVC.predict`` returns: libsvm's one-vs-one vote (ties to the first class), or with
    ``break_ties=True`` the arg-max of scikit-learn's one-vs-rest decision function."""
    if not break_ties:
        return ovo_votes(value("pairs")).argmax(1)
    layer = cast(RBFContrast, network.graph_module.get_submodule("pairs"))
    return ovr_decision(layer.orient(layer.decision(value("x")))).argmax(1)


def _linear_predict(network: Network, out: Tensor, value: Callable[[str], Tensor], break_ties: bool) -> Tensor:
    """As :func:`_rbf_predict` for the linear kernel, whose oriented pair units are the decision functions."""
    oriented = value("unflatten")
    return (ovr_decision(oriented) if break_ties else ovo_votes(oriented)).argmax(1)


def _target_rule(model: Any, rule: Callable[..., Tensor]) -> Callable[..., Tensor] | None:
    if len(model.classes_) == 2:
        return None  # arg-max of [-g, g] is the sign of the decision function
    ties = bool(getattr(model, "break_ties", False)) and model.decision_function_shape == "ovr"
    return functools.partial(rule, break_ties=ties)


def _pair_rules() -> Composite:
    # The pair layer keeps its registry default (SVCHybrid); the hard class minimum needs a stiffness.
    return Composite(by_type=[(ReduceMin, SoftMin(PAIR_BETA))], name="SVC")


def _rbf_network(model: Any) -> Network:
    pairs = ovo_pairs(model)
    sv = _as_dense(model.support_vectors_)
    pos, neg = np.zeros((len(sv), len(pairs))), np.zeros((len(sv), len(pairs)))
    for p, (pi, pc, ni, nc, _) in enumerate(pairs):
        pos[pi, p], neg[ni, p] = pc, -nc
    sv_class = np.repeat(np.arange(len(model.classes_)), model.n_support_)
    layer = RBFContrast(torch.as_tensor(sv), float(model._gamma), torch.as_tensor(pos), torch.as_tensor(neg),
                        torch.tensor([pr[4] for pr in pairs], dtype=torch.float64), torch.as_tensor(sv_class),
                        len(model.classes_))
    return Network.sequential(
        [("pairs", layer), ("pool", ReduceMin())],
        output_kind="decision",
        default_rules=_pair_rules(),
        chunk_size=4096,
        target_rule=_target_rule(model, _rbf_predict),
        reference=references.reference(references.svc_class_values, model,
                                       f"{type(model).__name__}'s kernel sums and decision_function", pairs=pairs),
        **_meta(model),
    )


def _oriented_linear(weight: np.ndarray, bias: np.ndarray, k: int) -> nn.Linear:
    """Pairwise affine units ``w_ab^T x + b_ab`` (``a < b``) in the ``(K, K - 1)`` layout, flattened."""
    pair_of, sign = (t.reshape(-1).numpy() for t in oriented_pairs(k))
    return _linear(sign[:, None] * weight[pair_of], sign * bias[pair_of])


def _linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(weight, dtype=torch.float64))
        lin.bias.copy_(torch.as_tensor(bias, dtype=torch.float64))
    return lin


def _linear_svc_network(model: Any) -> Network:
    coef = _as_dense(model.coef_)
    intercept = np.asarray(model.intercept_, dtype=np.float64).ravel()
    k = len(model.classes_)
    ref = references.reference(references.svc_linear_class_values, model, f"{type(model).__name__}.decision_function")
    if k == 2:
        return Network.sequential([("linear", _linear(np.stack([-coef[0], coef[0]]),
                                                      np.array([-intercept[0], intercept[0]])))],
                                  output_kind="decision", reference=ref, **_meta(model))
    # sklearn's public coef_/intercept_ of a multi-class SVC are libsvm's: positive votes for the first class.
    layers = [("linear", _oriented_linear(coef, intercept, k)), ("unflatten", nn.Unflatten(1, (k, k - 1)))]
    return Network.sequential(layers + [("pool", ReduceMin())], output_kind="decision", default_rules=_pair_rules(),
                              target_rule=_target_rule(model, _linear_predict), reference=ref, **_meta(model))


if SVC is not None:

    @register_types(SVC, NuSVC, description="sklearn SVC / NuSVC (kernel 'rbf': NEON of Bley et al. 2025, binary "
                                            "and one-vs-one; kernel 'linear': affine layer)", outputs=("decision",))
    def neuralize_svc(model: Any, output: str | None = None) -> Network:
        """An ``SVC`` (or ``NuSVC``) as a network whose arg-max is ``predict`` (docs/theory.md §4, "RBF SVC").

        Parameters
        ----------
        model
            A fitted ``sklearn.svm.SVC`` or ``NuSVC`` (same libsvm layout) with ``kernel='rbf'`` or ``'linear'``.
        output
            ``None`` or ``"decision"``.

        Returns
        -------
        Network
            Outputs ``(n, n_classes)``: ``f_c = min_{c' != c} g_cc'`` (for two classes ``[-g, g]``, the
            second with the sign of ``decision_function``). ``g`` is the log-ratio of the two kernel sums
            for ``kernel='rbf'`` and the pairwise decision function itself for ``kernel='linear'``.
        """
        check_is_fitted(model)
        kernel = model.kernel
        if callable(kernel) or kernel not in ("rbf", "linear"):
            what = "a callable kernel" if callable(kernel) else f"kernel={kernel!r}"
            raise UnsupportedModelError(f"{type(model).__name__} with {what} is not supported; supported: "
                                        f"{SUPPORTED_KERNELS}.")
        if len(model.classes_) < 2:  # pragma: no cover - sklearn refuses to fit one class
            raise UnsupportedModelError("SVC with a single class has nothing to explain.")
        if kernel == "linear":
            return _linear_svc_network(model)
        return _rbf_network(model)

    @register_types(LinearSVC, description="sklearn LinearSVC (one affine layer, outputs decision_function)",
                    outputs=("decision",))
    def neuralize_linear_svc(model: Any, output: str | None = None) -> Network:
        """A ``LinearSVC`` as one affine layer.

        Binary: outputs ``[-f, f]`` with ``f = decision_function``; multi-class (one-vs-rest or
        Crammer-Singer): the ``K`` decision functions, whose arg-max is ``predict``.
        """
        check_is_fitted(model)
        coef = _as_dense(model.coef_)
        intercept = np.array(np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64).ravel(), (coef.shape[0],)))
        if len(model.classes_) == 2:
            lin = _linear(np.stack([-coef[0], coef[0]]), np.array([-intercept[0], intercept[0]]))
        else:
            lin = _linear(coef, intercept)
        return Network.sequential([("linear", lin)], output_kind="decision", default_reference="mean",
                                  reference=references.reference(references.decision_two_columns, model,
                                                                 "LinearSVC.decision_function"),
                                  **_meta(model))
