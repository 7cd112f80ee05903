"""``neon.explain`` and ``neon.Explainer``: the scikit-learn style front of neon."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ._arrays import as_tensor
from ._batches import Sink, Source, check_device, fit_tensor, is_batch_stream, is_dask, progress_bar
from .converters import neuralize
from .exceptions import NeonError, RuleError
from .explanation import Explanation
from .layers.affine import is_affine
from .layers.top import LogOdds
from .network import Network
from .propagate.kinds import NodeKind
from .rules import Reference, Rule
from .rules.composites import resolve
from .verification import check_equivalence, state_of


class Explainer:
    """Explain a model with LRP: neuralize once, fix data-dependent rule parameters, explain many times.

    Parameters
    ----------
    model
        A fitted scikit-learn estimator or pipeline, a PyTorch ``nn.Module``, or a :class:`neon.Network`.
        The model is never modified.
    rules
        ``None`` for the model's default rules, a preset name (``"epsilon_gamma_box"``, ``"lrp0"``,
        ...), a :class:`neon.composites.Composite`, one rule for every affine layer, or a dict
        ``{module_name: rule}`` overriding single layers of the default (for a PyTorch model: of
        :func:`~neon.composites.epsilon`). The default of a PyTorch model is
        :class:`~neon.composites.EpsilonGammaBox` (chosen by the ground-truth benchmark, docs/quality.md), whose
        ``z^B`` box comes from data: fit with ``fit(X)``, or ``neon.explain(model, X)``, which fits on ``X``.
        Hugging Face transformers default to :func:`~neon.composites.attnlrp`; in other torch models attention,
        softmax and normalisation layers get AttnLRP's rules within the default composite.
    output
        The explained output: ``"log-odds"`` (default for probabilistic classifiers) or ``"logit"``;
        ``None`` for the model's default (docs/theory.md §3).
    reference
        For models whose first layer is affine: ``None`` (the bias absorbs its share), ``"mean"``
        (the fit data mean; then a linear model's relevance equals SHAP's linear values), or an
        array. The explained value becomes ``f(x) - f(x~)``. The default, ``"auto"``, is the converter's
        recommendation: ``"mean"`` for linear models (relevance adds up to ``f(x) - f(mean)``, nothing
        absorbed), ``None`` for every other model.
    batch_size
        Rows per chunk (``None``: the network's own choice). Memory is bounded by the chunk, never by a copy of
        the data: each chunk is read, explained and written straight into the result. Results do not depend
        on it (batch independence).
    verify
        Check at run time that the network computes what the model computes (:mod:`neon.verification`):
        on the first rows of the fit data, else of the first explained batch, and again whenever the
        model's parameters, buffers or modes change; a difference raises :class:`neon.EquivalenceError`.
        A fitted explainer checks once per model version. ``False`` skips the check: safe only for a model
        whose network has been checked before in the same form (e.g. the same model explained in a loop
        with ``verify=True`` on its first call), never for a model that has not been checked at all.
    progress
        Show a progress bar (tqdm) while explaining: ``None`` (default) shows one when more than one chunk runs
        and the output is a terminal or a notebook; ``False`` never, ``True`` always.
    dtype
        The dtype to compute in; ``None`` follows the input (float32 data is explained in float32, float64 stays
        float64; integer data in the model's dtype). float16 / bfloat16 are meant for GPUs.
    device
        Where to compute (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None``: where the input is (numpy data: the CPU).
        numpy data explained on a GPU goes there chunk by chunk and comes back as numpy.
    **options
        Passed on to the converter (:func:`neon.neuralize`), e.g. ``output_selector=`` for a PyTorch model
        that returns several outputs.

    Attributes
    ----------
    network_ : neon.Network
        The neuralized model.
    rules_ : dict
        The fitted rule of every node.
    reference_ : Tensor or None
        The fitted reference point.
    baseline_ : Tensor or None
        The network's outputs at the reference point.
    n_features_in_ : int or None
        Number of features seen by the model (tabular models).
    equivalence_ : float or None
        ``max |network - model| / max |model|`` of the last run-time check (``None``: not checked yet, or
        nothing to compare with).

    Examples
    --------
    >>> from sklearn.cluster import KMeans
    >>> from sklearn.datasets import load_wine
    >>> import neon
    >>> X = load_wine().data
    >>> km = KMeans(3, n_init=10, random_state=0).fit(X)
    >>> expl = neon.Explainer(km).fit(X).explain(X[:5])
    >>> expl.relevance.shape
    (5, 13)
    """

    def __init__(self, model: Any, rules: Any = None, output: str | None = None, reference: Any = "auto",
                 batch_size: int | None = None, verify: bool = True, progress: bool | None = None,
                 dtype: torch.dtype | None = None, device: Any = None, **options: Any):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"batch_size={batch_size!r}: give a positive number of rows (or None).")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype={dtype!r}: give a floating torch dtype (torch.float32, torch.float64, "
                             "torch.float16, torch.bfloat16) or None to follow the input.")
        self.model = model
        self.rules = rules
        self.output = output
        self.reference = reference
        self.batch_size = batch_size
        self.verify = verify
        self.progress = progress
        self.dtype = dtype
        self.device = None if device is None else check_device(device)
        self.options = options

    # ------------------------------------------------------------------ fit
    def fit(self, X_fit: Any = None) -> Explainer:
        """Neuralize the model and fix every data-dependent default on ``X_fit``.

        ``X_fit`` is needed when a rule depends on data (k-means soft-min stiffness, ``"mean"``
        references, automatic z^B bounds); otherwise it may be ``None``. Returns ``self``.
        """
        self.__dict__.pop("_n_outputs", None)
        self._state = state_of(self.model)
        network = self._neuralize()
        composite = resolve(self.rules, network.default_rules)
        rules = network.assign_rules(composite)
        reference = self._reference(network)
        if reference is not None:
            rules = self._with_reference(network, rules, reference)
        self.network_ = network
        self._networks: dict[tuple[torch.dtype, str], Network] = {}
        self.__dict__.pop("_rule_cache", None)
        self.composite_ = composite
        self.equivalence_: float | None = None
        self._verified: Any = None
        needs_fit = [name for name, r in rules.items() if r.needs_fit]
        self._fitted_on_data = bool(needs_fit)
        x_fit = None
        if X_fit is not None:
            x_fit, info = fit_tensor(X_fit)
            self._check_features(network, x_fit.shape, info.feature_names)
            x_fit = x_fit.to(device=self._device(x_fit.device), dtype=self._dtype(x_fit.dtype, network.dtype))
        elif needs_fit:
            raise ValueError(
                "these rules depend on data and need fit data: "
                + ", ".join(f"{n}: {rules[n]!r}" for n in needs_fit) + ". Call fit(X) with representative data."
            )
        if x_fit is not None and needs_fit and len(x_fit) == 0:
            raise ValueError("X_fit is empty; data-dependent rules need at least one sample.")
        if x_fit is not None and self.verify and len(x_fit):
            self._check(x_fit)
        if x_fit is not None and needs_fit:
            net = self._network_for(x_fit.dtype, x_fit.device)
            rules = net.fit_rules(rules, x_fit)
        self.rules_ = rules
        self.reference_ = None
        self.baseline_ = None
        if reference is not None:
            name = self._first_affine(network)
            ref = cast(Reference, rules[name]).reference  # set by _with_reference
            self.reference_ = torch.as_tensor(ref, dtype=network.dtype)
            shape = (1,) + (tuple(network.input_shape) if network.input_shape else tuple(self.reference_.shape))
            x_ref = self.reference_.expand(shape) if self.reference_.dim() <= len(shape) else self.reference_
            self.baseline_ = network(x_ref.to(network.dtype))[0]
        self.n_features_in_ = network.input_shape[0] if network.input_shape and len(network.input_shape) == 1 \
            else None
        return self

    @staticmethod
    def _first_affine(network: Network) -> str:
        for s in network.steps:
            if s.kind is NodeKind.LAYER and (is_affine(s.module) or isinstance(s.module, LogOdds)):
                return s.name
        raise RuleError("reference= needs a model whose first layer is affine (linear models, MLPs, CNNs).")

    def _neuralize(self) -> Network:
        options = dict(self.options)
        if self.output is not None:
            options["output"] = self.output
        return neuralize(self.model, **options)

    def _reference(self, network: Network) -> Any:
        """The reference point asked for: ``reference=``, or for ``"auto"`` the converter's recommendation."""
        if isinstance(self.reference, str) and self.reference == "auto":
            return network.default_reference
        return self.reference

    def _dtype(self, data: torch.dtype, network: torch.dtype) -> torch.dtype:
        """The computation's dtype: ``dtype=``, else the data's floating dtype, else the network's."""
        if self.dtype is not None:
            return self.dtype
        return data if data.is_floating_point else network

    def _device(self, data: torch.device) -> torch.device:
        return data if self.device is None else self.device

    def _check(self, x: Tensor) -> None:
        """The run-time equivalence check on the first rows of ``x`` (:func:`neon.verification.check_equivalence`)."""
        net = self._network_for(x.dtype, x.device)
        self.equivalence_ = check_equivalence(net, x)
        self._verified = self._state

    def _ensure_equivalent(self, x: Tensor) -> None:
        """Check the network against the model once per model version (cheap when nothing changed)."""
        state = state_of(self.model)
        if state == self._verified:
            return
        if state != self._state:
            if self._fitted_on_data:
                raise NeonError(
                    f"{type(self.model).__name__} changed (its parameters, buffers, modes or fitted attributes) after "
                    "the explainer was fitted, and rule parameters were fitted on data for the model as it was: call "
                    "fit(X) again to explain the current model."
                )
            self._state = state
            self.network_ = self._neuralize()  # the same graph for the changed model; rules stay by node name
            self._networks = {}
            self.__dict__.pop("_rule_cache", None)
        self._check(x)

    def _with_reference(self, network: Network, rules: dict[str, Rule], ref: Any) -> dict[str, Rule]:
        name = self._first_affine(network)
        if isinstance(ref, str):
            if ref != "mean":
                raise ValueError(f"reference={ref!r}; use None, 'mean' or an array.")
        else:
            ref, _ = as_tensor(np.asarray(ref)[None] if not isinstance(ref, Tensor) else ref[None], "reference")
            ref = ref[0].to(network.dtype)
            if network.input_shape and tuple(ref.shape) not in (tuple(network.input_shape), ()):
                raise ValueError(f"reference has shape {tuple(ref.shape)}, but the model expects inputs of shape "
                                 f"{network.input_shape}.")
        return {**rules, name: Reference(ref, stabilizer=0.0)}

    def _network_for(self, dtype: torch.dtype, device: torch.device) -> Network:
        base = self.network_
        if base.dtype == dtype and base.device == device:
            return base
        key = (dtype, str(device))
        if key not in self._networks:
            import copy

            self._networks[key] = copy.deepcopy(base).to(dtype=dtype, device=device)
        return self._networks[key]

    def _check_features(self, network: Network, shape: Sequence[int], feature_names: Any) -> None:
        """The data's per-sample shape and feature names against the network's (as scikit-learn words it)."""
        expected = network.input_shape
        if expected is not None and tuple(shape[1:]) != tuple(expected):
            what = network.description or "the model"
            if len(expected) == 1 and len(shape) == 2:
                raise ValueError(f"X has {shape[1]} features, but {what} is expecting {expected[0]} features "
                                 "as input.")
            raise ValueError(f"X has per-sample shape {tuple(shape[1:])}, but {what} expects {expected}.")
        if feature_names is not None and network.feature_names is not None \
                and list(feature_names) != list(network.feature_names):
            raise ValueError(
                "The feature names should match those that were passed during fit. "
                f"Expected {network.feature_names}, got {feature_names}."
            )

    # ------------------------------------------------------------------ explain
    def explain(self, X: Any, target: Any = None, record: bool = False) -> Any:
        """Explain ``target`` (default: the predicted class / assigned cluster) for every row of ``X``.

        Parameters
        ----------
        X
            Inputs, ``(n, ...)``: a numpy array or memmap, a torch tensor, a pandas DataFrame, a pyarrow Table
            (relevance comes back in the same form; a memmap as an in-memory array), an iterable of batches
            such as a torch ``DataLoader`` (then an iterator of one :class:`Explanation` per batch), or a dask
            array or DataFrame (then a lazy explanation of dask arrays, see :mod:`neon.distributed`).
        target
            ``None`` (the model's prediction: predicted class, assigned cluster, the only output), one index
            for all samples, one index per sample, or a target name (class label).
        record
            Keep the relevance of every node in ``Explanation.layers`` (for inspection and tests).
        """
        if is_dask(X):
            from .distributed import explain_dask

            return explain_dask(self, X, target)
        if is_batch_stream(X):
            return self._explain_stream(X, target, record)
        source = Source(X)
        if not hasattr(self, "network_"):
            self.fit(X)  # documented: an unfitted explainer fits on the data it explains
        network = self.network_
        self._check_features(network, source.shape, source.feature_names)
        dtype = self._dtype(source.torch_dtype, network.dtype)
        device = self._device(getattr(source, "device", torch.device("cpu")))
        net = self._network_for(dtype, device)
        out_dtype = source.dtype if source.kind != "torch" else None
        sink = Sink(source, out_dtype)
        n = source.n
        rules_desc = f"{self.composite_!r}"
        if n == 0:
            empty = torch.zeros(0, dtype=dtype)
            sink.put_relevance(0, torch.zeros((0,) + tuple(source.shape[1:]), dtype=dtype))
            return Explanation(
                relevance=sink.finish_relevance(), output=sink.finish_vector(empty),
                target=sink.finish_vector(empty.long()), absorbed=sink.finish_vector(empty), data=X,
                baseline=sink.finish_vector(empty), feature_names=source.feature_names or network.feature_names,
                target_names=network.target_names, output_kind=network.output_kind, rules=rules_desc,
            )
        chunk = self.batch_size or network.chunk_size or n
        layers: dict[str, list[Tensor]] | None = {} if record else None
        with progress_bar(n, self.progress, n > chunk) as bar:
            for start, xb in source.chunks(chunk):
                xb = xb.to(device=device, dtype=dtype)
                if self.verify and start == 0:
                    self._ensure_equivalent(xb)
                    net = self._network_for(dtype, device)  # a changed model was traced again
                # The default target (the prediction) comes from propagate's own forward pass: no second forward.
                tb = None if target is None and self.baseline_ is None else self._targets(net, xb, target, start, n)
                # With a reference the explained value is f(x) - f(x~): that is what the relevance starts from
                # (tb is set whenever there is a baseline).
                bb = None if self.baseline_ is None else \
                    self.baseline_.to(device=cast(Tensor, tb).device).gather(0, tb)
                p = net.propagate(xb, tb, self._rules_for(net), record=record, baseline=bb)
                assert p.target is not None  # propagate always returns the explained target
                baseline = torch.zeros_like(p.value) if self.baseline_ is None else \
                    self.baseline_.to(p.value).gather(0, p.target.to(p.value.device))
                explained = p.value - baseline
                sink.put_relevance(start, p.relevance)
                sink.put("output", explained)
                sink.put("target", p.target)
                sink.put("baseline", baseline)
                sink.put("absorbed", explained - p.relevance.reshape(len(xb), -1).sum(1))
                if record:
                    assert layers is not None and p.layers is not None  # record=True
                    for k, v in p.layers.items():
                        layers.setdefault(k, []).append(v)
                bar.update(len(xb))
        return Explanation(
            relevance=sink.finish_relevance(),
            output=sink.finish_vector(sink.vector("output")),
            target=sink.finish_vector(sink.vector("target")),
            absorbed=sink.finish_vector(sink.vector("absorbed")),
            data=X,
            baseline=sink.finish_vector(sink.vector("baseline")),
            feature_names=source.feature_names or network.feature_names,
            target_names=network.target_names,
            output_kind=network.output_kind,
            rules=rules_desc,
            layers=None if layers is None else {k: torch.cat(v) for k, v in layers.items()},
        )

    def _explain_stream(self, batches: Any, target: Any, record: bool) -> Iterator[Explanation]:
        """One explanation per batch of an iterable (a ``DataLoader`` yields ``x`` or ``(x, y, ...)``)."""
        if target is not None and not isinstance(target, (int, str, np.integer)):
            raise ValueError("target for an iterable of batches must be None, one index or one target name "
                             "(per-sample targets: explain each batch with its own target).")
        shape: tuple[int, ...] | None = None
        total = len(batches) if hasattr(batches, "__len__") else None
        with progress_bar(total, self.progress, total is None or total > 1, unit="batches") as bar:
            for i, batch in enumerate(batches):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                per_sample = tuple(x.shape[1:]) if hasattr(x, "shape") else None
                if shape is None:
                    shape = per_sample
                elif per_sample != shape:
                    raise ValueError(f"batch {i} has per-sample shape {per_sample}, but the first batch had {shape}: "
                                     "every batch must have the same width.")
                yield self.explain(x, target=target, record=record)
                bar.update(1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for cache in ("_networks", "_rule_cache"):  # rebuilt on demand
            state.pop(cache, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "network_" in state:
            self._networks = {}
            # the unpickled model is a new object computing what the pickled one did: same version, checked
            checked = state.get("_verified") == state.get("_state")
            self._state = state_of(self.model)
            self._verified = self._state if checked else None

    __call__ = explain

    def _rules_for(self, net: Network) -> dict[str, Rule]:
        if net is self.network_:
            return self.rules_
        key = ("rules", net.dtype, str(net.device))
        cache = self.__dict__.setdefault("_rule_cache", {})
        if key not in cache:
            cache[key] = {k: _move_rule(r, net.dtype, net.device) for k, r in self.rules_.items()}
        return cache[key]

    def _targets(self, net: Network, x: Tensor, target: Any, start: int, n: int) -> Tensor:
        if target is not None and net.n_targets is None and "_n_outputs" not in self.__dict__:
            with torch.no_grad():  # a torch model does not say how many outputs it has: look once per fit
                self._n_outputs = net(x[:1]).shape[1]
        return resolve_targets(net, x, target, start, n, n_outputs=self.__dict__.get("_n_outputs"))


def resolve_targets(net: Network, x: Tensor, target: Any, start: int = 0, n: int | None = None,
                    n_outputs: int | None = None) -> Tensor:
    """Validate ``target`` for rows ``start:start + len(x)`` of ``n`` and return one index per row.

    ``None`` is the arg-max output; an int, a target name, or one index per sample (``n`` of them)
    are accepted; anything out of range is a ``ValueError`` naming the model's targets.
    """
    m = len(x)
    n = m if n is None else n
    if target is None:
        return net.predict(x)
    n_targets = net.n_targets or n_outputs
    if n_targets is None:
        with torch.no_grad():
            n_targets = net(x[:1]).shape[1]
    names = net.target_names
    if isinstance(target, str) or (names is not None and not isinstance(target, (int, np.integer, Tensor,
                                                                                  np.ndarray, list, tuple))):
        if names is None or target not in names:
            shown = [v.item() if isinstance(v, np.generic) else v for v in (names or [])]  # 3, not np.int64(3)
            raise ValueError(f"target {target!r} is not one of the model's targets {shown}.")
        target = names.index(target)
    t = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, Tensor) else target))
    if t.dtype.is_floating_point:
        if not bool((t == t.round()).all()):
            raise ValueError(f"target must hold integer indices; got {target!r}.")
        t = t.long()
    if t.dim() == 0:
        t = t.expand(m)
    elif t.dim() == 1 and len(t) == n:
        t = t[start:start + m]
    else:
        raise ValueError(f"target must be one index or one per sample ({n}); got shape {tuple(t.shape)}.")
    if bool(((t < 0) | (t >= n_targets)).any()):
        raise ValueError(f"target out of range: the model has {n_targets} targets (0..{n_targets - 1}); "
                         f"got {sorted(set(t.tolist()) - set(range(n_targets)))}.")
    return t.long().to(x.device)


def _move_rule(rule: Rule, dtype: torch.dtype, device: torch.device) -> Rule:
    changes = {k: v.to(dtype=dtype, device=device) for k, v in vars(rule).items()
               if isinstance(v, Tensor) and v.is_floating_point()}
    return rule._replace(**changes) if changes else rule


def explain(model: Any, X: Any, target: Any = None, rules: Any = None, output: str | None = None,
            **options: Any) -> Explanation:
    """Explain ``model`` at ``X`` in one call: ``Explainer(model, rules, output).fit(X).explain(X, target)``.

    Data-dependent defaults (k-means soft-min stiffness, ``"mean"`` references, automatic z^B
    bounds) are fitted on ``X`` itself, so the result for a sample can depend on the rest of ``X``.
    To explain batches consistently, fit an :class:`Explainer` once on representative data.

    Returns
    -------
    Explanation
        ``relevance`` (shape of ``X``), ``output``, ``target``, ``absorbed``.
    """
    return Explainer(model, rules=rules, output=output, **options).fit(X).explain(X, target=target)
