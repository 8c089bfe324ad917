"""Decode token sequences from any step-wise model: greedy, beam search, sampling.

The decoders know nothing of the model. They only call two functions:

``step(tokens, state) -> (log_probs, state)``
    ``tokens`` is an int64 array ``(N,)``: the token fed to each of ``N`` rows
    at this step. ``log_probs`` is a float array ``(N, V)`` (float32 or
    float64) of normalised log-probabilities of the next token of each row.
    ``state`` is opaque: the decoders pass it back to ``step`` untouched.
``reorder(state, index) -> state`` (beam search only)
    The state of the rows ``index``, an int64 array ``(M,)`` whose entries may
    repeat or leave rows out (``M`` may differ from ``N``).

Common semantics:

* ``first_tokens`` ``(N,)`` is fed at the first step (the last token of a
  prompt, or ``<bos>``), and the initial ``state`` holds ``N`` rows.
* Each step emits one token per row, for at most ``max_length`` steps. A row
  that emits ``eos_id`` is finished. The returned tokens of a row are the
  emitted ones *without* the final ``eos_id``, so at most ``max_length`` of
  them; fewer than ``max_length`` means the row emitted ``eos_id``.
* The score of a sequence is the sum, in float64, of the model's
  log-probabilities of its emitted tokens, the ``eos_id`` included when it was
  emitted. Beam search divides it by :func:`length_penalty` of the number of
  emitted tokens (``eos_id`` included).
* ``eos_id`` is forbidden (its log-probability taken as ``-inf``) while fewer
  than ``min_length`` tokens have been emitted.
* A row's result never depends on the other rows of the batch: decoding a row
  alone or among others gives the same tokens and scores, bit for bit
  (provided the model itself computes its rows independently).
  :func:`greedy_search` and :func:`sample` keep feeding ``eos_id`` to the
  rows that finished until every row has; :func:`beam_search` drops the rows
  whose search is over through ``reorder``.

All arithmetic on scores is float64, whatever the dtype of ``log_probs``.
"""

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "Reorder",
    "StepFunction",
    "beam_search",
    "greedy_search",
    "length_penalty",
    "sample",
]

#: ``step(tokens, state) -> (log_probs, state)``, see the module docstring.
StepFunction = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]
#: ``reorder(state, index) -> state``, see the module docstring.
Reorder = Callable[[Any, np.ndarray], Any]


def length_penalty(length, alpha):
    """The length penalty of GNMT (Wu et al., 2016), as in OpenNMT-py's "wu".

    Parameters
    ----------
    length : int or array-like of int
        Number of emitted tokens, ``eos`` included when it was emitted; >= 0.
    alpha : float
        Strength of the penalty; 0 disables it (the penalty is then 1).

    Returns
    -------
    float or ndarray of float64
        ``((5 + length) / 6) ** alpha``, of the shape of ``length``.

    Notes
    -----
    Beam search divides a hypothesis' summed log-probability (which is <= 0)
    by this penalty: with ``alpha > 0`` longer hypotheses are divided by more,
    which offsets the log-probability they lose with each extra token.
    """
    alpha = _check_real(alpha, "alpha")
    length = np.asarray(length)
    if length.dtype.kind not in "iu":
        raise TypeError(f"length must be an int or ints; got dtype {length.dtype}.")
    if np.any(length < 0):
        raise ValueError(f"length must be >= 0; got {length}.")
    penalty = _wu_penalty(length.astype(np.float64), alpha)
    return float(penalty) if penalty.ndim == 0 else penalty


def greedy_search(step, state, first_tokens, *, eos_id, max_length, min_length=0):
    """Emit, at every step, the most probable next token of each row.

    Parameters
    ----------
    step : callable
        ``step(tokens, state) -> (log_probs, state)``, with ``tokens`` of
        shape ``(N,)`` and ``log_probs`` of shape ``(N, V)``, see
        :mod:`rnntools.decoding`.
    state : object
        Initial state of the ``N`` rows, passed to ``step`` as it is.
    first_tokens : array-like of int, shape (N,)
        Token fed to each row at the first step.
    eos_id : int
        End-of-sequence token, in ``[0, V)``.
    max_length : int
        Most tokens emitted per row (>= 1), ``eos_id`` included.
    min_length : int, default=0
        ``eos_id`` is forbidden until a row has emitted this many tokens;
        ``0 <= min_length <= max_length``.

    Returns
    -------
    sequences : list of N int64 ndarrays
        The emitted tokens of each row without the final ``eos_id``; a row of
        ``max_length`` tokens never emitted it.
    scores : float64 ndarray, shape (N,)
        Summed log-probabilities of the emitted tokens, ``eos_id`` included.

    Raises
    ------
    ValueError
        On an invalid argument, when ``step`` returns ``log_probs`` of the
        wrong shape or with NaN or ``+inf``, or when every token allowed to a
        row has log-probability ``-inf``.
    TypeError
        On an argument of the wrong type.

    Notes
    -----
    Ties go to the lowest token id. Equals :func:`beam_search` with
    ``beam_width=1`` and ``length_penalty=0``, and :func:`sample` with
    ``top_k=1``.
    """
    first_tokens = _check_first_tokens(first_tokens)
    eos_id, max_length, min_length = _check_lengths(eos_id, max_length, min_length)

    def most_probable(log_probs, rows, t):
        return np.argmax(log_probs, axis=1)

    return _decode_row_by_row(
        step, state, first_tokens, eos_id, max_length, min_length, most_probable
    )


def sample(
    step,
    state,
    first_tokens,
    *,
    eos_id,
    max_length,
    min_length=0,
    temperature=1.0,
    top_k=None,
    top_p=None,
    random_state=None,
):
    """Draw, at every step, the next token of each row from the model.

    Parameters
    ----------
    step : callable
        ``step(tokens, state) -> (log_probs, state)``, with ``tokens`` of
        shape ``(N,)`` and ``log_probs`` of shape ``(N, V)``, see
        :mod:`rnntools.decoding`.
    state : object
        Initial state of the ``N`` rows, passed to ``step`` as it is.
    first_tokens : array-like of int, shape (N,)
        Token fed to each row at the first step.
    eos_id : int
        End-of-sequence token, in ``[0, V)``.
    max_length : int
        Most tokens emitted per row (>= 1), ``eos_id`` included.
    min_length : int, default=0
        ``eos_id`` is forbidden until a row has emitted this many tokens;
        ``0 <= min_length <= max_length``.
    temperature : float, default=1.0
        Positive and finite: the log-probabilities are divided by it before
        drawing. Below 1 sharpens the distribution, above 1 flattens it.
    top_k : int or None, default=None
        Draw only among the ``top_k`` (>= 1) most probable tokens; ties at
        the cut go to the lowest token ids. ``top_k=1`` is greedy search.
    top_p : float or None, default=None
        Nucleus sampling, in ``(0, 1]``: draw only among the smallest set of
        most probable tokens whose probabilities sum to at least ``top_p``
        (never fewer than one token). Applied after ``temperature`` and
        ``top_k``, to their renormalised distribution.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        A Generator or RandomState is used as it is (and advanced); None or
        an int >= 0 seeds ``numpy.random.default_rng``.

    Returns
    -------
    sequences : list of N int64 ndarrays
        The emitted tokens of each row without the final ``eos_id``; a row of
        ``max_length`` tokens never emitted it.
    scores : float64 ndarray, shape (N,)
        Summed log-probabilities *under the model* (neither tempered nor
        truncated) of the emitted tokens, ``eos_id`` included.

    Raises
    ------
    ValueError
        On an invalid argument, when ``step`` returns ``log_probs`` of the
        wrong shape or with NaN or ``+inf``, or when every token allowed to a
        row has log-probability ``-inf``.
    TypeError
        On an argument of the wrong type.

    Notes
    -----
    All uniform variates are drawn at once, as an ``(N, max_length)`` array
    (``8 * N * max_length`` bytes), and row ``i`` draws its token of step
    ``t`` by inverting its cumulative distribution at ``u[i, t]``. So a row's
    tokens depend on ``random_state``, its position and its own inputs only:
    never on the other rows, and the first row of a batch samples exactly as
    it would alone.
    """
    first_tokens = _check_first_tokens(first_tokens)
    eos_id, max_length, min_length = _check_lengths(eos_id, max_length, min_length)
    temperature = _check_real(temperature, "temperature")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", minimum=1)
    if top_p is not None:
        top_p = _check_real(top_p, "top_p")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {top_p}.")
    uniforms = _check_random_state(random_state).random(
        (first_tokens.shape[0], max_length)
    )

    def draw(log_probs, rows, t):
        logits = log_probs / temperature
        if top_k is not None and top_k < logits.shape[1]:
            keep = np.zeros(logits.shape, dtype=bool)
            np.put_along_axis(keep, _top_k_stable(logits, top_k), True, axis=1)
            logits = np.where(keep, logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        if top_p is not None and top_p < 1:
            weights = _nucleus(weights, top_p)
        return _invert_cdf(weights, uniforms[rows, t])

    return _decode_row_by_row(
        step, state, first_tokens, eos_id, max_length, min_length, draw
    )


def beam_search(
    step,
    reorder,
    state,
    first_tokens,
    *,
    eos_id,
    max_length,
    beam_width,
    n_best=1,
    min_length=0,
    length_penalty=0.0,
):
    """Search, for each row, the sequences of highest length-penalised score.

    Parameters
    ----------
    step : callable
        ``step(tokens, state) -> (log_probs, state)``, see
        :mod:`rnntools.decoding`. Called once per time step, on the
        ``R * beam_width`` beams of the ``R`` rows still searching.
    reorder : callable
        ``reorder(state, index) -> state``: the rows ``index`` (int64,
        ``(M,)``) of ``state``. First called with
        ``np.repeat(np.arange(N), beam_width)`` to give each row its beams.
    state : object
        Initial state of the ``N`` rows.
    first_tokens : array-like of int, shape (N,)
        Token fed to each row at the first step.
    eos_id : int
        End-of-sequence token, in ``[0, V)``.
    max_length : int
        Most tokens emitted per hypothesis (>= 1), ``eos_id`` included.
    beam_width : int
        Number of live hypotheses kept per row (>= 1).
    n_best : int, default=1
        Number of hypotheses returned per row, ``1 <= n_best <= beam_width``.
    min_length : int, default=0
        ``eos_id`` is forbidden until a hypothesis has emitted this many
        tokens; ``0 <= min_length <= max_length``.
    length_penalty : float, default=0.0
        ``alpha`` of :func:`length_penalty` (finite; 0 means none, > 0
        favours longer hypotheses).

    Returns
    -------
    list of N lists of (tokens, score) pairs
        Per row, its best distinct hypotheses, best first, ties in the order
        they were found: ``tokens`` is an int64 ndarray of the emitted tokens
        without the final ``eos_id`` (fewer than ``max_length`` of them means
        the hypothesis ended with ``eos_id``; ``max_length`` means it was cut
        there) and ``score`` a float, the summed log-probability of the
        emitted tokens (``eos_id`` included) divided by
        ``length_penalty(L, alpha)``, ``L`` the number of emitted tokens.
        Only hypotheses of finite score are returned: ``n_best`` of them
        unless the model gives fewer distinct sequences a non-zero
        probability.

    Raises
    ------
    ValueError
        On an invalid argument, when ``step`` returns ``log_probs`` of the
        wrong shape or with NaN or ``+inf``, or when every continuation of a
        row has log-probability ``-inf``.
    TypeError
        On an argument of the wrong type.

    Notes
    -----
    At the first step only beam 0 of each row is live (the others score
    ``-inf``), so the beams stay distinct. At each step every row ranks its
    ``beam_width * V`` candidate extensions by summed log-probability
    (float64, ties to the lowest index ``beam * V + token``) and walks down
    the ranking until it has ``beam_width`` live extensions that do not end in
    ``eos_id``. The extensions ending in ``eos_id`` met on the way (those
    ranked above the last live beam) join the row's pool of finished
    hypotheses, penalised. At ``max_length`` the live beams join the pool as
    they are. A row's search stops early once its pool holds ``n_best``
    finished hypotheses and no live beam can end with a higher score than
    the ``n_best``-th of them: a live beam of summed log-probability
    ``s <= 0`` after ``l`` tokens ends with a sum ``s' <= s`` (log-probs are
    ``<= 0``) and a length ``L`` in ``[l + 1, max_length]``, so its final
    score ``s' / P(L) <= s / P(L) <= s / max(P(l + 1), P(max_length))``,
    ``P`` the length penalty, which is monotonic in ``L`` for any sign of
    ``alpha``. The bound assumes normalised ``log_probs``.
    """
    first_tokens = _check_first_tokens(first_tokens)
    eos_id, max_length, min_length = _check_lengths(eos_id, max_length, min_length)
    beam_width, n_best, alpha = _check_beam(beam_width, n_best, length_penalty)

    n_rows = first_tokens.shape[0]
    rows = np.arange(n_rows)  # original index of each row still searching
    pools = [[] for _ in range(n_rows)]  # per row, (score, hypothesis) found so far
    nth_best = np.full(n_rows, -np.inf)  # per row, the n_best-th score in its pool
    state = reorder(state, np.repeat(rows, beam_width))
    tokens = np.repeat(first_tokens, beam_width)
    beam_sums = np.full((n_rows, beam_width), -np.inf)
    beam_sums[:, 0] = 0.0
    # Back-pointers instead of every beam's history copied at every step
    # (quadratic in max_length): the tokens chosen at each step, their parent
    # beam, and which rows went on to the next step. A hypothesis is the node
    # (step, row position, beam) of its last token; _Histories reads them all
    # back in one backward pass at the end.
    histories = _Histories()
    vocab_size = None
    for t in range(max_length):
        log_probs, state = _call_step(step, tokens, state, vocab_size, eos_id, t)
        _check_no_nan(log_probs, t)
        vocab_size = log_probs.shape[1]
        candidates = beam_sums[:, :, None] + log_probs.reshape(
            rows.size, beam_width, vocab_size
        )
        eos_sums = candidates[:, :, eos_id].copy()
        if t < min_length:
            eos_sums[:] = -np.inf
        candidates[:, :, eos_id] = -np.inf
        candidates = candidates.reshape(rows.size, beam_width * vocab_size)
        best = _top_k_stable(candidates, beam_width)
        beam_sums = np.take_along_axis(candidates, best, axis=1)
        parents, tokens = np.divmod(best, vocab_size)

        # eos extensions ranked above the last live beam are finished: the
        # beam's history so far (its node at step t - 1), then eos.
        eos_index = np.arange(beam_width) * vocab_size + eos_id
        last_sum, last_index = beam_sums[:, -1:], best[:, -1:]
        finished = np.isfinite(eos_sums) & (
            (eos_sums > last_sum) | ((eos_sums == last_sum) & (eos_index < last_index))
        )
        eos_penalty = _wu_penalty(t + 1, alpha)
        for r, beam in zip(*np.nonzero(finished), strict=True):
            hypothesis = histories.node(t - 1, histories.previous_position(t, r), beam)
            _add_to_pool(
                pools, nth_best, n_best, rows[r],
                eos_sums[r, beam] / eos_penalty, hypothesis,
            )  # fmt: skip
        histories.add_step(tokens, parents)
        dead = np.isneginf(beam_sums[:, 0])  # beam_sums[:, 0]: the best live sum
        for r in np.flatnonzero(dead):
            if not pools[rows[r]]:
                raise ValueError(
                    f"Every continuation of row {rows[r]} has log-probability "
                    f"-inf at step {t}{_eos_note(t, min_length)}."
                )

        if t == max_length - 1:
            cut_penalty = _wu_penalty(max_length, alpha)
            for r, row in enumerate(rows):
                live = np.flatnonzero(np.isfinite(beam_sums[r]))
                pools[row].extend(
                    (beam_sums[r, beam] / cut_penalty, histories.node(t, r, beam))
                    for beam in live
                )
            break

        best_final = beam_sums[:, 0] / max(
            _wu_penalty(t + 2, alpha), _wu_penalty(max_length, alpha)
        )
        # nth_best is -inf until a row holds n_best finished hypotheses.
        searching = ~dead & (best_final > nth_best[rows])
        if not searching.any():
            break
        histories.keep(np.flatnonzero(searching))
        index = np.arange(rows.size)[:, None] * beam_width + parents
        state = reorder(state, index[searching].ravel())
        tokens = tokens[searching].ravel()
        rows = rows[searching]
        beam_sums = beam_sums[searching]

    chosen = [sorted(pool, key=lambda entry: -entry[0])[:n_best] for pool in pools]
    tokens_of = histories.read([node for best in chosen for _, node in best])
    return [
        [(tokens_of[node], float(score)) for score, node in best] for best in chosen
    ]


class _Histories:
    """The back-pointers of :func:`beam_search`, read back all at once.

    Step ``t`` records, for each row still searching (in order) and beam, the
    token chosen and its parent beam at step ``t - 1``; and which of those
    rows searched on at step ``t + 1``. A node ``(t, position, beam)`` is a
    hypothesis ending with the token of that beam at step ``t``; ``t = -1``
    is the empty hypothesis.
    """

    def __init__(self):
        self.tokens = []  # per step, int64 (rows at that step, beam_width)
        self.parents = []
        self.kept = []  # per step, positions (at that step) of the next rows

    def add_step(self, tokens, parents):
        self.tokens.append(tokens)
        self.parents.append(parents)
        self.kept.append(None)  # all rows, unless keep() says otherwise

    def keep(self, positions):
        self.kept[-1] = positions

    def previous_position(self, t, position):
        """The position at step ``t - 1`` of the row at ``position`` at ``t``."""
        if t == 0:
            return position
        kept = self.kept[t - 1]
        return position if kept is None else int(kept[position])

    @staticmethod
    def node(t, position, beam):
        return (t, int(position), int(beam))

    def read(self, nodes):
        """``{node: int64 tokens}`` of ``nodes``, in one pass from the last
        step to the first (one vectorised lookup per step for all of them)."""
        nodes = list(dict.fromkeys(nodes))
        lengths = np.array([t + 1 for t, _, _ in nodes], dtype=np.int64)
        longest = int(lengths.max(initial=0))
        out = np.zeros((len(nodes), longest), dtype=np.int64)
        ends = np.array([t for t, _, _ in nodes], dtype=np.int64)
        positions = np.array([p for _, p, _ in nodes], dtype=np.int64)
        beams = np.array([b for _, _, b in nodes], dtype=np.int64)
        walking = np.zeros(0, dtype=np.int64)  # the nodes followed back so far
        for t in range(longest - 1, -1, -1):
            walking = np.concatenate([walking, np.flatnonzero(ends == t)])
            here_positions, here_beams = positions[walking], beams[walking]
            out[walking, t] = self.tokens[t][here_positions, here_beams]
            beams[walking] = self.parents[t][here_positions, here_beams]
            if t > 0 and self.kept[t - 1] is not None:
                positions[walking] = self.kept[t - 1][here_positions]
        return {node: out[i, : lengths[i]].copy() for i, node in enumerate(nodes)}


def _check_beam(beam_width, n_best, length_penalty):
    """``(beam_width, n_best, alpha)`` checked, or raise."""
    beam_width = _check_int(beam_width, "beam_width", minimum=1)
    n_best = _check_int(n_best, "n_best", minimum=1)
    if n_best > beam_width:
        raise ValueError(
            f"n_best={n_best} is more than beam_width={beam_width}: beam search "
            "cannot return more hypotheses than it keeps."
        )
    return beam_width, n_best, _check_real(length_penalty, "length_penalty")


def _add_to_pool(pools, nth_best, n_best, row, score, tokens):
    """Add a finished hypothesis to ``row``'s pool and update the row's
    ``n_best``-th best score (``-inf`` while the pool holds fewer)."""
    pool = pools[row]
    pool.append((score, tokens))
    if len(pool) >= n_best:
        nth_best[row] = sorted((s for s, _ in pool), reverse=True)[n_best - 1]


def _decode_row_by_row(
    step, state, first_tokens, eos_id, max_length, min_length, next_tokens
):
    """The loop of greedy search and sampling: one token per row and step.

    ``next_tokens(log_probs, rows, t) -> tokens`` picks the tokens ``(n,)`` of
    the ``n`` unfinished rows ``rows`` from their float64 ``log_probs``
    ``(n, V)``, where ``eos_id`` is already ``-inf`` if forbidden and every
    row has a finite entry.
    """
    n_rows = first_tokens.shape[0]
    emitted = np.empty((n_rows, max_length), dtype=np.int64)
    lengths = np.zeros(n_rows, dtype=np.int64)  # tokens emitted, eos excluded
    scores = np.zeros(n_rows)
    finished = np.zeros(n_rows, dtype=bool)
    tokens = first_tokens
    vocab_size = None
    for t in range(max_length):
        log_probs, state = _call_step(step, tokens, state, vocab_size, eos_id, t)
        vocab_size = log_probs.shape[1]
        rows = np.flatnonzero(~finished)
        log_probs = log_probs[rows]
        _check_no_nan(log_probs, t)
        if t < min_length:
            log_probs[:, eos_id] = -np.inf
        impossible = np.isneginf(log_probs).all(axis=1)
        if impossible.any():
            raise ValueError(
                f"Every token allowed to row {rows[impossible][0]} has "
                f"log-probability -inf at step {t}{_eos_note(t, min_length)}."
            )
        chosen = next_tokens(log_probs, rows, t)
        scores[rows] += log_probs[np.arange(rows.size), chosen]
        tokens = np.full(n_rows, eos_id, dtype=np.int64)
        tokens[rows] = chosen
        emitted[:, t] = tokens
        ended = chosen == eos_id
        lengths[rows[~ended]] += 1
        finished[rows[ended]] = True
        if finished.all():
            break
    return [emitted[i, : lengths[i]].copy() for i in range(n_rows)], scores


def _call_step(step, tokens, state, vocab_size, eos_id, t):
    """Call ``step`` and check its output.

    Returns ``log_probs`` as float64 ``(len(tokens), V)`` (not a copy when
    ``step`` returned float64: the caller must not write to it) and the new
    state. ``vocab_size`` is ``V`` of the earlier steps (None at the first).
    """
    output = step(tokens, state)
    if not isinstance(output, tuple) or len(output) != 2:
        raise TypeError(
            f"step must return a (log_probs, state) pair; got {type(output).__name__}."
        )
    log_probs, state = output
    log_probs = np.asarray(log_probs)
    if log_probs.dtype.kind != "f":
        raise TypeError(
            f"step's output log_probs must be floats; got dtype {log_probs.dtype} "
            f"at step {t}."
        )
    expected = f"({tokens.shape[0]}, {'V' if vocab_size is None else vocab_size})"
    if (
        log_probs.ndim != 2
        or log_probs.shape[0] != tokens.shape[0]
        or log_probs.shape[1] == 0
        or vocab_size not in (None, log_probs.shape[1])
    ):
        raise ValueError(
            f"step's output log_probs has shape {log_probs.shape} at step {t}; "
            f"expected {expected}: one row of next-token log-probabilities per "
            "token fed, over the same vocabulary at every step."
        )
    if eos_id >= log_probs.shape[1]:
        raise ValueError(
            f"eos_id={eos_id} is not a token of the vocabulary of size "
            f"{log_probs.shape[1]} of step's output log_probs."
        )
    return log_probs.astype(np.float64, copy=False), state


def _check_no_nan(log_probs, t):
    """Reject NaN and ``+inf``, which no normalised log-probability can be."""
    if np.isnan(log_probs).any() or np.isposinf(log_probs).any():
        raise ValueError(
            f"step's output log_probs holds NaN or +inf at step {t}; expected "
            "normalised log-probabilities (<= 0, -inf for impossible tokens)."
        )


def _eos_note(t, min_length):
    if t < min_length:
        return f" (eos_id is forbidden until min_length={min_length} tokens)"
    return ""


def _wu_penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def _top_k_stable(values, k):
    """Indices ``(R, k)`` of the ``k`` largest of each row of ``values`` ``(R, C)``.

    Sorted by decreasing value, ties to the lowest index, as a stable
    ``argsort(-values)[:, :k]`` would give, in ``O(C)`` per row rather than
    ``O(C log C)``. ``values`` holds no NaN.
    """
    if k >= values.shape[1]:
        return np.argsort(-values, axis=1, kind="stable")
    top = np.argpartition(-values, k - 1, axis=1)[:, :k]
    kth_largest = np.take_along_axis(values, top, axis=1).min(axis=1, keepdims=True)
    # argpartition takes any of the values tied with the k-th largest: where
    # more than k values reach it, keep the tied ones of lowest index.
    tied_rows = np.flatnonzero((values >= kth_largest).sum(axis=1) > k)
    if tied_rows.size:
        rows, kth_tied = values[tied_rows], kth_largest[tied_rows]
        above = rows > kth_tied
        tied = rows == kth_tied
        tied_needed = k - above.sum(axis=1, keepdims=True)
        keep = above | (tied & (np.cumsum(tied, axis=1) <= tied_needed))
        top[tied_rows] = np.nonzero(keep)[1].reshape(tied_rows.size, k)
    top.sort(axis=1)  # by index, so that the stable sort breaks ties by index
    order = np.argsort(-np.take_along_axis(values, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _nucleus(weights, top_p):
    """Zero the weights ``(n, V)`` outside each row's top-``top_p`` nucleus.

    A token is kept when the tokens more probable than it (ties: of lower id)
    hold less than ``top_p`` of the row's total weight.
    """
    order = np.argsort(-weights, axis=1, kind="stable")
    sorted_weights = np.take_along_axis(weights, order, axis=1)
    cumulative = np.cumsum(sorted_weights, axis=1)
    before = np.concatenate([np.zeros((len(weights), 1)), cumulative[:, :-1]], axis=1)
    keep = np.zeros(weights.shape, dtype=bool)
    np.put_along_axis(keep, order, before < top_p * cumulative[:, -1:], axis=1)
    return np.where(keep, weights, 0.0)


def _invert_cdf(weights, uniforms):
    """Draw one token per row of ``weights`` ``(n, V)`` (>= 0, max 1).

    Token ``j`` is drawn when ``uniforms[i] * total`` falls in
    ``[cdf[j - 1], cdf[j])``, so a zero-weight token never is: ``u < 1`` and
    ``total >= 1``, and rounded to nearest, ``u * total < total`` still, which
    keeps the draw at or before the last token of non-zero weight.
    """
    cumulative = np.cumsum(weights, axis=1)
    targets = uniforms[:, None] * cumulative[:, -1:]
    return (cumulative <= targets).sum(axis=1)


def _check_first_tokens(first_tokens):
    tokens = np.asarray(first_tokens)
    if tokens.ndim != 1 or tokens.size == 0:
        raise ValueError(
            "first_tokens must be a non-empty 1-D array (N,) of the tokens fed "
            f"at the first step; got shape {tokens.shape}."
        )
    if tokens.dtype.kind not in "iu":
        raise TypeError(
            f"first_tokens must be integer token ids; got dtype {tokens.dtype}."
        )
    return tokens.astype(np.int64)


def _check_lengths(eos_id, max_length, min_length):
    eos_id = _check_int(eos_id, "eos_id", minimum=0)
    max_length = _check_int(max_length, "max_length", minimum=1)
    min_length = _check_int(min_length, "min_length", minimum=0)
    if min_length > max_length:
        raise ValueError(
            f"min_length={min_length} is more than max_length={max_length}."
        )
    return eos_id, max_length, min_length


def _check_int(value, name, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def _check_real(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    return float(value)


def _check_random_state(random_state):
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise TypeError(
            "random_state must be None, an int, a numpy.random.Generator or a "
            f"numpy.random.RandomState; got {random_state!r}."
        )
    if random_state < 0:
        raise ValueError(f"random_state must be >= 0; got {random_state}.")
    return np.random.default_rng(int(random_state))
