"""The top layer of a classifier: log-odds as an exact two-layer network (docs/theory.md §3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .affine import AffineView, linear_view


class LogOdds(nn.Module):
    """Log-odds ``eta_c = log(P_c / (1 - P_c))`` of a softmax classifier whose logits are ``linear(a)``.

    ``eta_c = -log sum_{c' != c} exp(-(z_c - z_c'))``: a linear layer of differences
    ``h_c' = (w_c - w_c')^T a + (b_c - b_c')`` followed by soft-min pooling with stiffness 1
    (Montavon et al., "Layer-wise relevance propagation: an overview", 2019). The forward
    returns the log-odds of every class, ``(n, C)``; the backward (in the engine) works on the
    difference layer of the explained class, so the rule of the wrapped linear layer applies to
    ``w_c - w_c'``.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if linear.out_features < 2:
            raise ValueError("LogOdds needs at least two logits (write a binary model as logits [0, f]).")
        self.linear = linear

    @staticmethod
    def log_odds(z: Tensor) -> Tensor:
        """Numerically stable ``z_c - logsumexp_{c' != c} z_c'`` for all classes (``O(n C)``)."""
        top = z.argmax(dim=-1, keepdim=True)
        m = z.gather(-1, top)
        e = torch.exp(z - m)
        total = e.sum(-1, keepdim=True)
        # total - e_c >= 1 for every c except the arg-max: no cancellation there.
        lse_others = m + torch.log((total - e).clamp_min(torch.finfo(z.dtype).tiny))
        masked = z.scatter(-1, top, float("-inf"))
        lse_top = torch.logsumexp(masked, dim=-1, keepdim=True)
        lse_others = lse_others.scatter(-1, top, lse_top)
        return z - lse_others

    def forward(self, a: Tensor) -> Tensor:
        return self.log_odds(self.linear(a))

    def contrast(self, target: int) -> AffineView:
        """The difference layer ``h_c' = z_target - z_c'`` (``c' != target``) as an affine view."""
        w, b = self.linear.weight, self.linear.bias
        keep = torch.arange(w.shape[0], device=w.device) != target
        weight = w[target].unsqueeze(0) - w[keep]
        bias = None if b is None else b[target] - b[keep]
        return linear_view(weight, bias)
