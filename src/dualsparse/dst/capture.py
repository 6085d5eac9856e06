"""Capture a batch's layer inputs and output gradients (what gradient-based growth needs)."""

from __future__ import annotations

from ..sparse import SparseLinear


class LayerIOCapture:
    """While active, records ``layer_io[layer] = (input, grad_of_output)`` for every SparseLinear.

    Used for one batch right before a RigL update; costs one activation-sized copy per layer.
    """

    def __init__(self, model):
        self.model = model
        self.layer_io: dict = {}
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
            output.register_hook(lambda g, layer=layer, x=x: self.layer_io.__setitem__(layer, (x, g.detach())))

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return False
