"""The propagation backend: what a network's graph is made of and how relevance runs through it.

- :mod:`neon.propagate.kinds`: the node kinds (:class:`~neon.propagate.kinds.NodeKind`);
- :mod:`neon.propagate.graph`: every node of a traced graph classified into a kind, or refused;
- :mod:`neon.propagate.facts`: what the graph and the rules prove before running (non-negative inputs,
  one-sided relevance);
- :mod:`neon.propagate.engine`: one forward pass that keeps what the rules need, one backward relevance pass.

The engine knows the rule protocol (:mod:`neon.rules.base`) and nothing of any concrete rule or of the
models networks come from. This package imports nothing on its own, so each part can be imported alone.
"""
