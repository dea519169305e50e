"""Work a training run starts on a side thread while the model fits, kept by key until a later stage reads it.

Training fits the model on one core (torch on one thread). What needs no fitted model (the
history, gradient boosting, the transition priors of later cutoffs, the rankers, the transformer
library's import) is started here as soon as its inputs exist and runs on the other core; the
stage that needs a result reads it with :meth:`SideWork.result`, which computes it in place when it
was not started. Each piece reads only what it is given and draws from no shared random
generator, so the results are those of computing in place.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class SideWork:
    """A one-thread executor and the results started on it, by key (see the module docstring)."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._early: dict = {}

    def open(self) -> "SideWork":
        """Start the side thread; without it :meth:`ahead` starts nothing."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartsight-beside-fit")
        return self

    def close(self, cancel: bool = False) -> None:
        """Wait for the side thread's work (``cancel``: drop what has not started) and stop the thread."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=cancel)
            self._executor = None

    def ahead(self, key, fn: Callable, *args) -> Future | None:
        """Start ``fn(*args)`` on the side thread as ``key`` (once); its future, None without a side thread."""
        if self._executor is not None and key not in self._early:
            # the arguments stay referenced with the result: a key may hold the id() of one of them
            self._early[key] = (self._executor.submit(fn, *args), args)
        entry = self._early.get(key)
        return None if entry is None else entry[0]

    def result(self, key, fn: Callable, *args):
        """What :meth:`ahead` started as ``key`` (then forgotten), else ``fn(*args)`` computed now."""
        entry = self._early.pop(key, None)
        return fn(*args) if entry is None else entry[0].result()


def after(earlier: Future, fn: Callable, *args):
    """``fn(earlier.result(), *args)``: side work on an earlier piece's result (the side thread runs its work in
    the order started, so that piece is done when this one runs)."""
    return fn(earlier.result(), *args)


def import_model_library() -> None:
    """Import the transformer library (seconds of Python imports), so that building the model does not wait."""
    import transformers.models.gpt2.modeling_gpt2  # noqa: F401
