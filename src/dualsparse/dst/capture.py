"""Capture a batch's layer inputs and output gradients (what gradient-based growth needs)."""

from __future__ import annotations

from ..sparse import SparseLinear


class LayerIOCapture:
    """While active, records ``layer_io[layer] = (input, grad_of_output)`` for every SparseLinear.

    Used for one batch right before a RigL update; costs one activation-sized copy per layer.
    Entered again for later batches (``with cap: ...`` once per batch) it keeps every captured
    batch, oldest first, in ``layer_windows[layer]``: the last few batches before an update are
    what momentum-based growth (SNFS) needs; ``layer_io`` always holds the latest.
    """

    def __init__(self, model):
        self.model = model
        self.layer_io: dict = {}
        self.layer_windows: dict = {}
        self._inputs: dict = {}
        self._handles: list = []

    def __enter__(self):
        for layer in self.model.modules():
            if isinstance(layer, SparseLinear):
                self._handles.append(layer.register_forward_hook(self._forward_hook))
        return self

    def _forward_hook(self, layer, args, output):
        x = args[0].detach()
        if output.requires_grad:
            output.register_hook(lambda g, layer=layer, x=x: self._record(layer, x, g.detach()))

    def _record(self, layer, x, g):
        self.layer_io[layer] = (x, g)
        self.layer_windows.setdefault(layer, []).append((x, g))

    @property
    def n_batches(self) -> int:
        """How many batches were captured (those of the first layer)."""
        return max((len(w) for w in self.layer_windows.values()), default=0)

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return False
