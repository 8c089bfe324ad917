"""``python -m rnntools.compile`` calls every kernel (filling Numba's cache)."""

import contextlib
import io

import pytest

from rnntools import compile as ahead_of_time
from rnntools.kernels import blas, cpu, decoder, row_invariant, spin

#: The kernels called from Python (the others are compiled into them).
ENTRY_KERNELS = [
    "lstm_forward_layer", "lstm_panel_layer", "gru_forward_layer",
    "rnn_forward_layer",
    "lstm_backward_layer", "gru_backward_layer", "rnn_backward_layer",
    "state_step", "embedding_gather", "embedding_scatter_add", "adam_update",
]  # fmt: skip
#: The decoding kernels (:mod:`rnntools.kernels.decoder`) called from Python.
DECODER_KERNELS = ["decoder_step", "greedy_block", "beam_block", "scratch_size"]


@pytest.fixture(scope="module")
def printed():
    """What ``python -m rnntools.compile`` prints (run once for the module)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ahead_of_time.main(["--dtypes", "float32", "float64"])
    return out.getvalue()


def test_compile_reports_what_it_did(printed):
    assert "compiled (or loaded) every kernel for float32, float64" in printed


@pytest.mark.parametrize(
    "module, name",
    [(cpu, name) for name in ENTRY_KERNELS]
    + [(decoder, name) for name in DECODER_KERNELS]
    # The product cpu.layer_param_grads (Python) and the estimators' output
    # layers call.
    + [(row_invariant, "row_invariant_matmul")],
)
def test_every_entry_kernel_has_both_dtypes(printed, module, name):
    assert {"float32", "float64"} <= _compiled_dtypes(getattr(module, name))


@pytest.mark.skipif(
    not blas.TN_BLOCKS_PAY,
    reason="without AVX-512 blas.weight_gradient never calls matmul_tn",
)
def test_the_weight_gradients_blocks_are_compiled_for_float32(printed):
    # blas.weight_gradient sends float64 products to NumPy's BLAS, so
    # matmul_tn runs (and is compiled ahead of time) in float32 only. Listed
    # above with both dtypes, it passed only after test_blas had compiled its
    # float64 version: this module alone failed.
    assert "float32" in _compiled_dtypes(blas.matmul_tn)


def _compiled_dtypes(kernel):
    """Float dtypes among a kernel's compiled signatures: its arguments, and
    the arrays inside tuple arguments (the decoder's model)."""
    arguments = [
        inner
        for signature in kernel.signatures
        for argument in signature
        for inner in getattr(argument, "types", (argument,))
    ]
    return {
        argument.dtype.name
        for argument in arguments
        if hasattr(argument, "dtype") and argument.dtype.name.startswith("float")
    }


def test_the_threads_spin_waits_are_compiled(printed):
    assert spin.wait_for_flag.signatures
    assert spin.set_flag_and_wait.signatures
