"""Shared helpers of the ``rnntools.functional`` test modules.

Every test of the functional API runs a problem (an
:class:`strategies.RNNProblem` and its :class:`strategies.RNNArrays`) forward
and backward, either through ``rnntools`` or through the references of
``naive.py``, and compares the results. The helpers here do that once, and
return the results as one flat ``dict`` of named arrays so that a comparison
is a loop over names and a failure message names the array that differs.
"""

import numpy as np
from naive import naive_backward, naive_forward

from rnntools import rnn_backward, rnn_forward

#: ``(cell, nonlinearity)`` of every cell variant.
VARIANTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
VARIANT_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]


def state_arrays(cell, state):
    """``[h]`` for rnn and gru, ``[h, c]`` for lstm."""
    return list(state) if cell == "lstm" else [state]


def state_from_arrays(cell, arrays):
    """Inverse of :func:`state_arrays`."""
    return tuple(arrays) if cell == "lstm" else arrays[0]


def state_names(cell):
    """Names of a state's arrays: ``["h"]``, or ``["h", "c"]`` for lstm."""
    return ["h", "c"] if cell == "lstm" else ["h"]


def map_state(state, function):
    """Apply ``function`` to every array of a state (array, tuple or None)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(function(part) for part in state)
    return function(state)


def flatten_results(cell, output, final_state, grads, d_x, d_initial_state):
    """Forward and backward results as one dict of named arrays.

    Returns
    -------
    dict of str to ndarray
        ``output``, ``final_h`` (``final_c``), ``grad_<key>`` for every
        parameter key, ``d_x``, ``d_initial_h`` (``d_initial_c``).
    """
    results = {"output": output}
    for name, part in zip(
        state_names(cell), state_arrays(cell, final_state), strict=True
    ):
        results[f"final_{name}"] = part
    results.update({f"grad_{key}": value for key, value in grads.items()})
    results["d_x"] = d_x
    for name, part in zip(
        state_names(cell), state_arrays(cell, d_initial_state), strict=True
    ):
        results[f"d_initial_{name}"] = part
    return results


def run_rnntools(problem, arrays, **overrides):
    """``rnn_forward`` then ``rnn_backward`` on a problem.

    Parameters
    ----------
    problem : RNNProblem
    arrays : RNNArrays
        Their dtype is the compute dtype.
    **overrides
        Replace ``x``, ``params``, ``d_output``, ``d_final_state`` or any
        keyword argument of ``rnn_forward``.

    Returns
    -------
    dict of str to ndarray
        See :func:`flatten_results`.
    """
    kwargs = {
        "x": arrays.x,
        "params": arrays.params,
        "d_output": arrays.d_output,
        "d_final_state": arrays.d_final_state,
        **problem.forward_kwargs(arrays),
        **overrides,
    }
    d_output = kwargs.pop("d_output")
    d_final_state = kwargs.pop("d_final_state")
    output, final_state, cache = rnn_forward(**kwargs)
    grads, d_x, d_initial_state = rnn_backward(cache, d_output, d_final_state)
    return flatten_results(
        problem.cell, output, final_state, grads, d_x, d_initial_state
    )


def run_naive(problem, arrays):
    """Like :func:`run_rnntools`, through ``naive_forward`` / ``naive_backward``."""
    kwargs = problem.forward_kwargs(arrays)
    output, final_state = naive_forward(arrays.x, arrays.params, **kwargs)
    grads, d_x, d_initial_state = naive_backward(
        arrays.x,
        arrays.params,
        d_output=arrays.d_output,
        d_final_state=arrays.d_final_state,
        **kwargs,
    )
    return flatten_results(
        problem.cell, output, final_state, grads, d_x, d_initial_state
    )


def as_float64(arrays):
    """The same problem's arrays, converted exactly to float64."""

    def to_float64(value):
        return value.astype(np.float64)

    return type(arrays)(
        x=to_float64(arrays.x),
        params={key: to_float64(value) for key, value in arrays.params.items()},
        lengths=arrays.lengths,
        initial_state=map_state(arrays.initial_state, to_float64),
        d_output=to_float64(arrays.d_output),
        d_final_state=map_state(arrays.d_final_state, to_float64),
    )


def scaled_error(actual, desired, floor=0.0):
    """``max |actual - desired| / max(max |desired|, floor)``; 0 if they are equal.

    The error of every element is measured against the scale of the whole
    array: an element that is small only because terms cancelled carries the
    rounding error of those terms, so an element-wise relative error would be
    meaningless for it. ``floor`` does the same for a whole array that is
    small because its terms cancelled (a one-element bias gradient, say).
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    difference = np.max(np.abs(actual - desired), initial=0.0)
    if difference == 0:
        return 0.0
    scale = max(np.max(np.abs(desired), initial=0.0), floor)
    return difference / scale if scale > 0 else np.inf


def assert_results_close(actual, desired, rtol, floor=0.0):
    """Every array of ``desired`` matched by ``actual`` within ``rtol``.

    Parameters
    ----------
    actual, desired : dict of str to ndarray
        As returned by :func:`run_rnntools` / :func:`run_naive`.
    rtol : float
        Bound of :func:`scaled_error`.
    floor : float, default 0
        Smallest scale an array is measured against (see
        :func:`scaled_error`).
    """
    assert actual.keys() == desired.keys()
    errors = []
    for name, expected in desired.items():
        assert actual[name].shape == expected.shape, name
        error = scaled_error(actual[name], expected, floor)
        if not error <= rtol:
            errors.append(f"{name}: scaled error {error:.3g} > {rtol:.3g}")
    assert not errors, "\n".join(errors)


def assert_results_equal(actual, desired):
    """Bit-for-bit equality (NaN nowhere) of two :func:`run_rnntools` results."""
    assert actual.keys() == desired.keys()
    for name, expected in desired.items():
        assert actual[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(actual[name], expected, err_msg=name)


# ------------------------------------------- sequence writers (seq2seq, captions)
def teacher_forced(model, X, outputs):
    """What the training forward path says of ``outputs`` given ``X``.

    The decoder is run once over ``<bos> t_1 ... t_n`` (teacher forcing, one
    ``rnn_forward`` and one ``attention_forward`` call: not the one-step path
    that decoding takes), and its distributions are renormalised without
    ``<pad>`` and ``<bos>``, which decoding never writes.

    Parameters
    ----------
    model : fitted RNNSeq2Seq or RNNCaptioner
    X : inputs, as ``predict`` takes them
    outputs : list of token sequences
        What the model wrote for each input.

    Returns
    -------
    dict
        ``ids``: per output, the ids of its tokens then ``<eos>``;
        ``log_probs``: per output, the float64 log-distributions
        ``(len(output) + 1, V)`` of the steps that write them;
        ``attention`` (translation with attention, else None): per output, the
        weights ``(len(output), S_i)`` over its source's real positions;
        ``padding_attention``: the largest weight any row gives a padded
        source position (0 expected).
    """
    from rnntools.estimators._generator import HEAD_BIAS, HEAD_WEIGHT, _Pairs
    from rnntools.vocabulary import Vocabulary

    params = model.params_
    condition, condition_lengths, _ = model._check_condition(X, first_call=False)
    inputs, targets, lengths = model._encode_targets(outputs, model.vocabulary_)
    pairs = _Pairs(inputs, condition, condition_lengths)
    start = model._condition_forward(pairs, params, training=False)
    features, _, weights = model._decoder_forward(
        inputs, lengths, params, start, training=False
    )
    logits = (features @ params[HEAD_WEIGHT].T + params[HEAD_BIAS]).astype(np.float64)
    logits[:, :, [Vocabulary.PAD, Vocabulary.BOS]] = -np.inf
    logits -= logits.max(axis=2, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    result = {
        "ids": [targets[row, :length] for row, length in enumerate(lengths)],
        "log_probs": [log_probs[row, :length] for row, length in enumerate(lengths)],
        "attention": None,
        "padding_attention": 0.0,
    }
    if weights is not None:
        result["attention"] = [
            weights[row, : length - 1, : condition_lengths[row]]
            for row, length in enumerate(lengths)
        ]
        padding = np.arange(weights.shape[2]) >= condition_lengths[:, None]
        valid = np.arange(weights.shape[1]) < lengths[:, None]
        mask = valid[:, :, None] & padding[:, None, :]
        result["padding_attention"] = float(np.max(weights[mask], initial=0.0))
    return result


def torch_leaves(torch, params):
    """Every parameter as a float64 leaf tensor (a copy) that records its grad."""
    return {
        key: torch.tensor(value, dtype=torch.float64, requires_grad=True)
        for key, value in params.items()
    }


def torch_recurrent(torch, cell, leaves, prefix, inputs, lengths, initial_state=None):
    """``nn.RNN/LSTM/GRU(batch_first=True)`` over packed ``inputs``.

    The module's weights are ``leaves[prefix + name]`` (``torch.func.
    functional_call``), its layers and directions read from their names.

    Parameters
    ----------
    inputs : tensor of shape (B, T, I)
    lengths : int ndarray of shape (B,)
    initial_state : tensor (L*D, B, H), a pair of them for the lstm, or None

    Returns
    -------
    output : tensor of shape (B, T, D*H)
        Zero at padded steps.
    final_state : tensor ``h_n`` (or ``(h_n, c_n)``) of shape (L*D, B, H)
    """
    from torch.func import functional_call

    names = {key[len(prefix) :] for key in leaves if key.startswith(prefix)}
    names = {name for name in names if name.startswith(("weight_", "bias_"))}
    hidden_size = leaves[prefix + "weight_hh_l0"].shape[1]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(
        leaves[prefix + "weight_ih_l0"].shape[1],
        hidden_size,
        num_layers=sum(name.startswith("weight_hh_l") for name in names)
        // (2 if "weight_hh_l0_reverse" in names else 1),
        batch_first=True,
        bidirectional="weight_hh_l0_reverse" in names,
    ).double()
    assert set(rnn.state_dict()) == names
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        inputs, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    output, final_state = functional_call(
        rnn, {name: leaves[prefix + name] for name in names}, (packed, initial_state)
    )
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(
        output, batch_first=True, total_length=inputs.shape[1]
    )
    return output, final_state


def torch_bridge(torch, leaves, name, inputs, num_layers):
    """``tanh(Linear(inputs))`` ``(B, L*H)`` as a state ``(L, B, H)``: block
    ``l`` of ``H`` outputs is layer ``l``'s."""
    out = torch.tanh(
        torch.nn.functional.linear(
            inputs, leaves[f"{name}.weight"], leaves[f"{name}.bias"]
        )
    )
    return out.reshape(len(inputs), num_layers, -1).transpose(0, 1).contiguous()


def torch_luong_attention(torch, leaves, output, memory, memory_lengths):
    """Luong global attention (``h_t . W_a h_s`` or ``h_t . h_s``), no bias:
    ``tanh(W_c [c_t; h_t])``, padded source positions masked out."""
    query = output
    if "attention.weight_a" in leaves:
        query = output @ leaves["attention.weight_a"]
    scores = query @ memory.transpose(1, 2)
    padding = (
        torch.arange(memory.shape[1])[None, :]
        >= torch.from_numpy(memory_lengths)[:, None]
    )
    scores = scores.masked_fill(padding[:, None, :], float("-inf"))
    context = torch.softmax(scores, dim=2) @ memory
    return torch.tanh(
        torch.cat([context, output], dim=2) @ leaves["attention.weight_c"].T
    )


def torch_decoder_loss(
    torch, cell, leaves, arguments, initial_state, *, memory=None, merge=None
):
    """The decoder's masked, weighted mean cross-entropy in PyTorch.

    Parameters
    ----------
    arguments : tuple
        ``(pairs, lengths, targets, weights, class_weights)`` of the seam.
    initial_state : tensor, pair of tensors or None
    memory : tensor of shape (B, S, H_mem) or None
        Attended to (with ``pairs.condition_lengths``) when the leaves hold
        ``attention.weight_c``.
    merge : tensor of shape (B, K) or None
        Joined to every step's output before the output layer.

    Returns
    -------
    loss : scalar tensor
        Over the ``lengths[b]`` targets of every row (``<eos>`` included),
        each weighing its row's weight, divided by the summed weight.
    """
    pairs, lengths, targets, weights, _ = arguments
    functional = torch.nn.functional
    inputs = torch.from_numpy(pairs.inputs)
    embedded = functional.embedding(inputs, leaves["decoder.embedding.weight"])
    output, _ = torch_recurrent(
        torch, cell, leaves, "decoder.", embedded, lengths, initial_state
    )
    if "attention.weight_c" in leaves:
        output = torch_luong_attention(
            torch, leaves, output, memory, pairs.condition_lengths
        )
    if merge is not None:
        output = torch.cat(
            [output, merge[:, None, :].expand(-1, output.shape[1], -1)], dim=2
        )
    logits = functional.linear(output, leaves["head.weight"], leaves["head.bias"])
    batch, steps, vocabulary_size = logits.shape
    token_loss = functional.cross_entropy(
        logits.reshape(-1, vocabulary_size),
        torch.from_numpy(targets[:, :steps]).reshape(-1),
        reduction="none",
    ).reshape(batch, steps)
    valid = torch.arange(steps)[None, :] < torch.from_numpy(lengths)[:, None]
    step_weights = valid * torch.from_numpy(weights)[:, None]
    return (token_loss * step_weights).sum() / step_weights.sum()


def assert_matches_torch(loss, grads, torch_loss, leaves, rtol, floor):
    """The seam's loss and gradients against PyTorch's (autograd) ones.

    Errors are :func:`scaled_error` with ``floor``; every parameter must have
    a gradient on both sides.
    """
    torch_loss.backward()
    expected_loss = torch_loss.item()
    assert abs(loss - expected_loss) <= rtol * max(abs(expected_loss), floor)
    assert grads.keys() == leaves.keys()
    errors = []
    for key, leaf in leaves.items():
        assert leaf.grad is not None, f"{key} is not used by the torch model"
        expected = leaf.grad.numpy()
        assert grads[key].shape == expected.shape, key
        error = scaled_error(grads[key], expected, floor)
        if not error <= rtol:
            errors.append(f"{key}: scaled error {error:.3g} > {rtol:.3g}")
    assert not errors, "\n".join(errors)
