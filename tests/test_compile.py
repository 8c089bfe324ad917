"""``python -m rnntools.compile`` calls every kernel (filling Numba's cache)."""

import contextlib
import io

import pytest

from rnntools import compile as ahead_of_time
from rnntools.kernels import cpu

#: The kernels called from Python (the others are compiled into them).
ENTRY_KERNELS = [
    "input_projection", "lstm_forward_layer", "gru_forward_layer",
    "rnn_forward_layer", "lstm_backward_layer", "gru_backward_layer",
    "rnn_backward_layer", "layer_param_grads", "stack_step",
    "embedding_gather", "embedding_scatter_add", "attention_step",
]  # fmt: skip


@pytest.fixture(scope="module")
def printed():
    """What ``python -m rnntools.compile`` prints (run once for the module)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ahead_of_time.main(["--dtypes", "float32", "float64"])
    return out.getvalue()


def test_compile_reports_what_it_did(printed):
    assert "compiled (or loaded) every kernel for float32, float64" in printed


@pytest.mark.parametrize("name", ENTRY_KERNELS)
def test_every_entry_kernel_has_both_dtypes(printed, name):
    kernel = getattr(cpu, name)
    dtypes = {
        argument.dtype.name
        for signature in kernel.signatures
        for argument in signature
        if hasattr(argument, "dtype") and argument.dtype.name.startswith("float")
    }
    assert {"float32", "float64"} <= dtypes
