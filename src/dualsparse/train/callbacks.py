"""Callbacks: how per-example statistics, logging and experiments plug into training.

Every hook is optional. ``X`` and ``y`` passed to ``on_fit_begin`` are the validated arrays
(``np.ndarray`` or ``scipy.sparse.csr_matrix``; ``y`` encoded as 0..C-1 for classifiers), and
``batch_index`` always holds row numbers of that ``X``, so a callback can keep per-row state.
"""

from __future__ import annotations


class Callback:
    #: Whether ``on_batch_end`` looks at the estimator's current weights (e.g. calls predict).
    #: A callback that reads only the hook's arguments sets it False: whole compiled epochs
    #: (:mod:`dualsparse.train.compiled_epoch`) then stay on, and its ``on_batch_end`` is called
    #: for every batch, in order, right after the compiled run that trained them.
    on_batch_end_reads_model = True
    #: Whether the callback holds per-example statistics while the fit runs (``example_stats_``
    #: with ``forgetting_events`` and ``never_learned``, as ``dualsparse.dynamics.ExampleTracker``):
    #: an algorithm that drops examples by them (MEST's data side) reads the first such callback.
    provides_example_stats = False

    def on_fit_begin(self, est, X, y, train_index, validation_index):
        pass

    def on_epoch_begin(self, est, epoch):
        pass

    def on_batch_end(self, est, epoch, batch_index, outputs, y_batch, loss):
        pass

    def on_epoch_end(self, est, epoch, logs):
        pass

    def on_topology_update(self, est, epoch, info):
        pass

    def on_fit_end(self, est):
        pass


def example_stats_source(callbacks):
    """The first callback that provides per-example statistics during fit, or None."""
    return next((cb for cb in (callbacks or []) if getattr(cb, "provides_example_stats", False)), None)


class CallbackList:
    """Fan a hook call out to several callbacks, in order."""

    _hooks = ("on_fit_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_topology_update", "on_fit_end")

    def __init__(self, callbacks):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not any(hasattr(cb, h) for h in self._hooks):
                raise TypeError(
                    f"callback {cb!r} has none of the hooks {', '.join(self._hooks)}; subclass dualsparse.train.Callback"
                )

    def __bool__(self):
        return bool(self.callbacks)

    def __getattr__(self, hook):
        if hook not in self._hooks:
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                fn = getattr(cb, hook, None)
                if fn is not None:
                    fn(*args, **kwargs)

        return call
