"""Run-time proof that a network computes what the model computes.

neon's promise is "an exactly equivalent network, then one LRP pass". :func:`check_equivalence` keeps it:
the network's outputs are compared with the model's own computation of the explained quantity
(:class:`neon.network.ModelReference`: ``decision_function``, ``score_samples``, ``predict_proba``, the torch
model's forward, ...) on a few rows, and a difference beyond the rounding of the dtype raises
:class:`neon.EquivalenceError` instead of explaining another function. :class:`neon.Explainer` runs it on
the first data it sees and again whenever the model changes, so a fitted explainer pays for it once.

Tolerances (``max |network - model| <= tol * max |model|`` over the checked rows) are the rounding of the
dtype the model or the network computes in, whichever is coarser. Folded batch norm, fused convolution kernels
and the log-sum-exp forms of the NEON layers round differently from the model's own code; measured on CPU
(torchvision resnet18, vgg11_bn, mobilenet_v2, densenet121 with random weights and batch-norm statistics, 8
images of 64x64), the largest relative differences were 0 in float64, 1.9e-6 in float32, 2.3e-3 in float16
and 1.7e-2 in bfloat16. The tolerances below leave a margin of 5x (float32), 8x (float16) and 3x (bfloat16)
over these; the NEON converters (float64) agree with scikit-learn to ~1e-13.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .exceptions import EquivalenceError
from .network import Network

#: Rows of the data the check runs on.
CHECK_ROWS = 16

#: ``max |network - model| / max |model|`` allowed per dtype of the computation.
TOLERANCE: dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-5,
    torch.float16: 2e-2,
    torch.bfloat16: 5e-2,
}

CAUSES = (
    "Usual causes: Python control flow on tensor values or shapes that the trace followed one way (an `if` or a "
    "loop on data; neon traces the forward once); state outside the input (random numbers, counters, a "
    "`self.training` branch in a model in training mode: call model.eval()); forward arguments traced at their "
    "defaults; weights changed through `.data` after the explainer was fitted (fit it again)."
)


def tolerance(dtype: torch.dtype) -> float:
    """The relative tolerance of the check for computations in ``dtype``."""
    return TOLERANCE.get(dtype, 1e-5)


def check_equivalence(network: Network, x: Tensor, rows: int = CHECK_ROWS) -> float | None:
    """Compare ``network`` with the model it was built from on the first ``rows`` rows of ``x``.

    Returns the relative difference ``max |network - model| / max |model|`` (``None`` when the network has no
    :class:`~neon.network.ModelReference`, e.g. one built by hand). Raises :class:`neon.EquivalenceError` when
    it exceeds :func:`tolerance` of the computation's dtype.
    """
    ref = network.reference
    if ref is None or len(x) == 0:
        return None
    xb = x[:rows]
    with torch.no_grad():
        want = torch.as_tensor(ref.compute(xb)).to(device=xb.device)
        got = network(xb)
        if ref.to_model is not None:
            got = ref.to_model(got)
    precision = want.dtype if want.is_floating_point() else got.dtype  # the model's own precision counts too
    want = want.reshape(len(xb), -1).to(got.dtype)
    name = network.description or "the model"
    if got.shape != want.shape:
        raise EquivalenceError(
            f"the network built from {name} has {got.shape[1]} outputs per sample, but {ref.what} gives "
            f"{want.shape[1]}: neon would explain another function. {CAUSES}"
        )
    finite = torch.isfinite(want)
    if not bool(finite.any()):
        return None  # the model's own values overflow on every checked row: nothing to compare with
    scale = float(want[finite].abs().max())
    diff = (got - want).abs()
    worst = float(diff[finite].max()) if bool(torch.isfinite(got[finite]).all()) else float("inf")
    relative = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    tol = max(tolerance(got.dtype), tolerance(precision))
    if relative > tol:
        where = ""
        if ref.diagnose is not None:
            try:
                where = " " + ref.diagnose(network, xb, tol)
            except Exception as err:  # noqa: BLE001 - a failed diagnosis must not hide the mismatch itself
                where = f" (locating the difference failed: {type(err).__name__}: {err})"
        raise EquivalenceError(
            f"the network neon built from {name} does not compute what {ref.what} computes: max |difference| "
            f"{worst:.3g} on the first {len(xb)} rows, {relative:.2g} of the output's scale {scale:.3g} "
            f"(allowed in {str(precision).replace('torch.', '')}: {tol:g}).{where} neon refuses to explain another "
            f"function. {CAUSES}"
        )
    return relative


def state_of(model: Any) -> Any:
    """A cheap fingerprint of what a model computes: equal fingerprints, same function (for re-checking)."""
    from torch import nn

    if isinstance(model, Network):
        return id(model)
    if isinstance(model, nn.Module):
        from .converters.tracing import model_state

        return model_state(model)
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):  # a scikit-learn pipeline: the state of every step
        return tuple(state_of(step) for _, step in steps)
    items = []
    for key, value in sorted(vars(model).items()) if hasattr(model, "__dict__") else []:
        if key.endswith("_") and not key.startswith("_"):
            ptr = value.__array_interface__["data"][0] if isinstance(value, np.ndarray) else None
            items.append((key, id(value), getattr(value, "shape", None), ptr))
    return (id(model), tuple(items))
