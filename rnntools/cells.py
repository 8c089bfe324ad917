"""Per-cell facts: gate counts, PyTorch parameter names and initialisers."""

import numpy as np

#: Number of gate blocks stacked in ``weight_ih`` / ``weight_hh`` per cell.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

#: Nonlinearities accepted by the Elman cell (``cell="rnn"``).
NONLINEARITIES = ("tanh", "relu")


def direction_suffixes(bidirectional):
    """Key suffixes of the directions of one layer, forward first."""
    return ("", "_reverse") if bidirectional else ("",)


def param_names(layer, suffix=""):
    """The four PyTorch ``state_dict`` keys of one layer and direction.

    Returns
    -------
    names : tuple of str
        ``(weight_ih, weight_hh, bias_ih, bias_hh)`` names, e.g.
        ``"weight_ih_l0_reverse"``.
    """
    return tuple(
        f"{kind}_l{layer}{suffix}"
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def expected_shapes(cell, input_size, hidden_size, num_layers, bidirectional):
    """Map every parameter key of a network to its shape.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    input_size, hidden_size, num_layers : int
    bidirectional : bool

    Returns
    -------
    shapes : dict of str to tuple of int
        In PyTorch's ``state_dict`` order.
    """
    gate_rows = GATES[cell] * hidden_size
    num_directions = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else num_directions * hidden_size
        for suffix in direction_suffixes(bidirectional):
            w_ih, w_hh, b_ih, b_hh = param_names(layer, suffix)
            shapes[w_ih] = (gate_rows, layer_input)
            shapes[w_hh] = (gate_rows, hidden_size)
            shapes[b_ih] = (gate_rows,)
            shapes[b_hh] = (gate_rows,)
    return shapes


def _orthogonal(rng, rows, cols):
    """A ``(rows, cols)`` matrix with orthonormal rows or columns (Saxe et al.)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def init_params(
    cell,
    input_size,
    hidden_size,
    num_layers=1,
    bidirectional=False,
    *,
    random_state=None,
    dtype=np.float32,
    scheme="pytorch",
):
    """Initialise the parameters of a (stacked, bidirectional) recurrent network.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
        Cell type.
    input_size : int
        Number of input features ``I``.
    hidden_size : int
        Number of hidden units ``H``.
    num_layers : int, default=1
        Number of stacked layers ``L``.
    bidirectional : bool, default=False
        Whether each layer also runs over the reversed sequence.
    random_state : int, RandomState instance or None, default=None
        Seed or generator, as in scikit-learn.
    dtype : numpy dtype, default=np.float32
        ``float32`` or ``float64``.
    scheme : {"pytorch", "keras"}, default="pytorch"
        ``"pytorch"``: every entry drawn from ``U(-1/sqrt(H), 1/sqrt(H))``, as
        ``torch.nn.RNN/LSTM/GRU`` do. ``"keras"``: Glorot-uniform input
        weights, orthogonal recurrent weights (per gate block), zero biases
        and, for the LSTM, a forget-gate bias of 1 (Jozefowicz et al., 2015).

    Returns
    -------
    params : dict of str to ndarray
        Keys and shapes exactly those of the PyTorch module's ``state_dict()``:
        ``weight_ih_l{k}`` ``(G*H, I_k)``, ``weight_hh_l{k}`` ``(G*H, H)``,
        ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G*H,)``, plus ``_reverse``
        keys when bidirectional.
    """
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}.")
    for name, value in (
        ("input_size", input_size),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}.")
    if scheme not in ("pytorch", "keras"):
        raise ValueError(f"scheme must be 'pytorch' or 'keras', got {scheme!r}.")

    from sklearn.utils import check_random_state  # not at import: see __init__

    rng = check_random_state(random_state)
    shapes = expected_shapes(cell, input_size, hidden_size, num_layers, bidirectional)
    params = {}
    if scheme == "pytorch":
        bound = 1.0 / np.sqrt(hidden_size)
        for key, shape in shapes.items():
            params[key] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        return params

    gates = GATES[cell]
    for key, shape in shapes.items():
        if key.startswith("weight_ih"):
            fan_out, fan_in = shape
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-bound, bound, size=shape)
        elif key.startswith("weight_hh"):
            value = np.concatenate(
                [_orthogonal(rng, hidden_size, hidden_size) for _ in range(gates)]
            )
        else:
            value = np.zeros(shape)
            if cell == "lstm" and key.startswith("bias_ih"):
                value[hidden_size : 2 * hidden_size] = 1.0
        params[key] = value.astype(dtype)
    return params
