"""The generating decoder laid out for decoding, over the fused kernels of
:mod:`rnntools.kernels.decoder`.

:class:`DecoderArrays` is built once per :meth:`generate` call from a fitted
model's parameters. :meth:`DecoderArrays.step_rows` advances any rows by one
step (sampling, prompts, attention weights); :meth:`DecoderArrays.greedy` and
:meth:`DecoderArrays.beam` run greedy and beam search to the end, a block of
rows per thread, with no Python between steps. Rows are independent and
computed by the same operations whatever the batch (row-invariant products),
so splitting them into blocks never changes a bit.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .._arrays import transposed
from .._threads import kernel_threads, num_threads, parallel_map
from .._workspace import POOL
from ..functional import (
    _MIN_FLOPS_PER_BLOCK,
    _NO_PARENTS,
    PreparedStep,
    _thread_scratch,
    prepare_step,
)
from ..kernels import cpu
from ..kernels import decoder as kernels
from ..kernels._jit import L2_CACHE_BYTES
from ..kernels.row_invariant import row_invariant_matmul

#: Output-layer columns are padded to a multiple of this (one AVX-512 vector
#: of float32, the log-softmax's LOGIT_LANES), which the log-softmax reads
#: whole vectors of (the product's edge, a masked tile, would not need it).
#: Padding to the widest tile (64) instead cost a 32-token captioner 8 % more
#: per decoding step: twice the head product and log-softmax for nothing (the
#: padding is masked out).
_HEAD_COLUMNS = kernels.LOGIT_LANES


#: Every token's first input product is computed once per decoding call when
#: the row-steps to decode are at least this many times the tokens (the
#: product then costs at most a quarter of what it saves) ...
_PROJECT_TOKENS = 4
#: ... and the table takes at most this many bytes.
_TABLE_BYTES = 16 * 2**20


def wants_table(tokens, rows):
    """Whether decoding ``rows`` row-steps over ``tokens`` input tokens
    computes every token's first input product once (see
    :data:`_PROJECT_TOKENS`; the table's size is checked apart)."""
    return tokens * _PROJECT_TOKENS <= rows


#: A thread decodes its rows in chunks whose conditioning (attention memory
#: and keys) takes at most this many bytes, each chunk to the end before the
#: next, so that what every step reads of it stays in L2 instead of coming
#: from memory at each step (a row's tokens do not depend on the rows around
#: it: the same bits) ...
_CHUNK_BYTES = 2**19
#: ... and whose states and step scratch take at most this many bytes; but
#: a chunk holds at least one input and about :data:`_MIN_CHUNK_ROWS` rows
#: (a step costs about 3 us for one row and 0.35 us per row more: fewer rows
#: would pay its fixed costs for too little work).
#: A GRU captioner (H = 64, 32 tokens, about 5.9 KB per row) on one thread
#: of the Xeon VM, 250 images, beam width 5: 6.2 ms in one chunk of 1250
#: rows (7 MB), 5.6-5.8 in chunks of 32 images; greedy search 1.47-1.48 ms
#: in one chunk of 250 rows or two of 128.
_SCRATCH_CHUNK_BYTES = L2_CACHE_BYTES // 2
_MIN_CHUNK_ROWS = 128


@dataclass(frozen=True)
class DecoderArrays:
    """A fitted decoder's weights, laid out once for the decoding kernels.

    Attributes
    ----------
    step : PreparedStep
        The recurrent stack (:func:`rnntools.functional.prepare_step`).
    embedding : ndarray of shape (V_in, E) or (V_in, G*H)
        The target embedding, or if ``projected`` each token's first-layer
        gate input (``embedding @ weight_ih_l0.T + bias``).
    projected : bool
    attention : {None, "dot", "general"}
    weight_a_t : ndarray of shape (H_mem, H)
        "general" attention's ``weight_a``, transposed (empty otherwise).
    attention_c_t : ndarray of shape (H_mem + H, H)
        The attentional layer's weight, transposed (empty without attention).
    head_weight_t : ndarray of shape (H + M, V_pad)
        The output layer's weight, transposed, zero-padded to
        :data:`_HEAD_COLUMNS` columns.
    head_bias : ndarray of shape (V_pad,)
    vocab_size : int
        ``V``, the output vocabulary.
    flops_per_row : int
        Multiply-adds x 2 of one row's step (how rows are split on threads).
    """

    step: PreparedStep
    embedding: np.ndarray
    projected: bool
    attention: str | None
    weight_a_t: np.ndarray
    attention_c_t: np.ndarray
    head_weight_t: np.ndarray
    head_bias: np.ndarray
    vocab_size: int
    flops_per_row: int

    @classmethod
    def from_params(
        cls, params, *, cell, nonlinearity, rnn_params, keys, attention, rows=0
    ):
        """Lay out ``params`` (a generating estimator's ``params_``).

        ``rnn_params`` are the decoder's recurrent parameters in
        :func:`~rnntools.functional.prepare_step`'s layout; ``keys`` names the
        embedding, head and attention parameters; ``attention`` is None,
        "dot" or "general". ``rows``: about how many row-steps will be
        decoded; when they outnumber the tokens enough, every token's first
        input product is computed once here (:data:`_PROJECT_TOKENS`).
        """
        step = prepare_step(rnn_params, cell, nonlinearity=nonlinearity)
        dtype = step.dtype
        embedding = np.array(params[keys["embedding"]], dtype=dtype)
        gate_width = step.bias.shape[1]
        projected = (
            wants_table(embedding.shape[0], rows)
            and embedding.shape[0] * gate_width * dtype.itemsize <= _TABLE_BYTES
        )
        if projected:
            table = np.empty((embedding.shape[0], gate_width), dtype=dtype)
            cpu._step_input(embedding, step.w_ih0_t, step.bias[0], table)
            # Checked here once, not row by row at every step (a tenth of a
            # beam search's step); if not finite, the rows are looked up and
            # checked as they are used, which reports the token's row.
            if np.isfinite(table).all():
                embedding = table
            else:
                projected = False
        hidden = step.hidden_size
        head_weight = params[keys["head_weight"]]
        vocab_size, head_inputs = head_weight.shape
        padded = -(-vocab_size // _HEAD_COLUMNS) * _HEAD_COLUMNS
        head_weight_t = np.zeros((head_inputs, padded), dtype=dtype)
        head_weight_t[:, :vocab_size] = transposed(head_weight, dtype)
        head_bias = np.zeros(padded, dtype=dtype)
        head_bias[:vocab_size] = params[keys["head_bias"]]
        empty = np.empty((0, 0), dtype=dtype)
        weight_a_t, attention_c_t = empty, empty
        if attention is not None:
            attention_c_t = transposed(params[keys["attention_c"]], dtype)
            if attention == "general":
                weight_a_t = transposed(params[keys["attention_a"]], dtype)
        flops = step.flops_per_row + 2 * head_inputs * padded
        if attention is not None:
            flops += 2 * attention_c_t.shape[0] * hidden
        return cls(
            step=step,
            embedding=embedding,
            projected=projected,
            attention=attention,
            weight_a_t=weight_a_t,
            attention_c_t=attention_c_t,
            head_weight_t=head_weight_t,
            head_bias=head_bias,
            vocab_size=vocab_size,
            flops_per_row=flops,
        )

    def attention_keys(self, memory):
        """The attention keys of every source position, laid out for
        :func:`rnntools.kernels.decoder.attention_step`.

        Parameters
        ----------
        memory : ndarray of shape (R, S, H_mem)
            Encoder outputs.

        Returns
        -------
        keys_t : ndarray of shape (R, H, S_pad)
            ``memory @ weight_a.T`` ("general": the query projection folded
            into the keys once per source instead of into the query at every
            step, as PyTorch users write it) or ``memory`` ("dot"),
            transposed and zero-padded to a multiple of
            :data:`~rnntools.kernels.decoder.KEY_POSITIONS` positions.
        """
        sources, positions, memory_size = memory.shape
        padded = -(-positions // kernels.KEY_POSITIONS) * kernels.KEY_POSITIONS
        if self.attention != "general":
            keys_t = np.zeros((sources, memory_size, padded), dtype=self.step.dtype)
            keys_t[:, :, :positions] = memory.transpose(0, 2, 1)
            return keys_t
        flat = np.ascontiguousarray(memory, dtype=self.step.dtype).reshape(
            sources * positions, memory_size
        )
        width = self.weight_a_t.shape[1]
        keys_t = np.empty((sources, width, padded), dtype=self.step.dtype)
        keys_t[:, :, positions:] = 0

        def project(block):
            # Each block's keys through a pooled scratch into their transposed
            # place: a fresh (R * S, H) array of keys cost more in page
            # faults than its product (3.7 against 0.9 ms for 500 x 30 x 128).
            rows = slice(block.start * positions, block.stop * positions)
            keys = POOL.empty((rows.stop - rows.start, width), flat.dtype)
            row_invariant_matmul(
                flat[rows], self.weight_a_t, keys, np.empty(0, dtype=keys.dtype)
            )
            keys_t[block, :, :positions] = keys.reshape(-1, positions, width).transpose(
                0, 2, 1
            )
            POOL.release([keys])

        self._on_threads(project, sources, flops=2 * self.weight_a_t.size * positions)
        return keys_t

    def kernel_model(self, condition, forbidden):
        """The ``model`` tuple of :mod:`rnntools.kernels.decoder`.

        Parameters
        ----------
        condition : _Condition
            The conditioning rows: ``memory``/``keys_t``/``memory_lengths``
            (attention) and ``merge`` (each None when unused).
        forbidden : array-like of int or None
            Tokens never emitted (ids ``< V``).
        """
        step = self.step
        dtype = step.dtype
        memory = condition.memory
        if memory is None:
            memory = keys_t = np.empty((0, 0, 0), dtype=dtype)
            memory_lengths = np.empty(0, dtype=np.int64)
        else:
            keys_t, memory_lengths = condition.keys_t, condition.memory_lengths
        merge = condition.merge
        if merge is None:
            merge = np.empty((0, 0), dtype=dtype)
        mask = np.zeros(self.head_bias.shape[0], dtype=dtype)
        mask[self.vocab_size :] = -np.inf  # the output layer's padding
        if forbidden is not None:
            mask[forbidden] = -np.inf
        return (
            self.embedding, step.kernel_relu, step.w_ih0_t, step.w_ih_rest_t,
            step.w_hh_t, step.bias, step.b_hn, step.tanh_columns,
            None if self.attention is None else self.attention_c_t, memory, keys_t,
            memory_lengths.astype(np.int64, copy=False), merge,
            self.head_weight_t, self.head_bias, mask, self.projected,
        )  # fmt: skip

    def _blocks(self, rows, steps=1, flops=None):
        """Row slices for the threads: one block unless the work (``flops``
        per row and step, the decoder step's by default) pays for more."""
        flops = self.flops_per_row if flops is None else flops
        affordable = rows * steps * flops // _MIN_FLOPS_PER_BLOCK
        blocks = int(max(1, min(num_threads(), rows, affordable)))
        bounds = [k * rows // blocks for k in range(blocks + 1)]
        return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]

    def _on_threads(self, run, rows, steps=1, flops=None):
        """``[run(block) for block in self._blocks(rows, steps, flops)]``,
        the blocks on several threads when there are several."""
        blocks = self._blocks(rows, steps, flops)
        if len(blocks) == 1:
            return [run(blocks[0])]
        with kernel_threads():
            return parallel_map(run, blocks)

    def _chunks(self, block, model, rows_per_input):
        """``block`` (a slice of inputs) in chunks of at most
        :data:`_CHUNK_BYTES` of conditioning and
        :data:`_SCRATCH_CHUNK_BYTES` of search scratch each, for
        ``rows_per_input`` rows (beams) per input."""
        memory = model[kernels.MODEL_MEMORY]
        keys_t = model[kernels.MODEL_KEYS_T]
        inputs = block.stop - block.start
        conditioning_bytes = (memory[0].nbytes + keys_t[0].nbytes) if len(memory) else 0
        size = (
            max(1, _CHUNK_BYTES // conditioning_bytes) if conditioning_bytes else inputs
        )
        step = self.step
        scratch_bytes = rows_per_input * (
            kernels.search_scratch_size(
                1, model, step.num_layers, step.hidden_size,
                step.hidden_size if step.cell == "lstm" else 0,
            ) * step.dtype.itemsize
            + self.vocab_size * 8  # log_probs
        )  # fmt: skip
        fitting = max(
            _SCRATCH_CHUNK_BYTES // scratch_bytes, _MIN_CHUNK_ROWS // rows_per_input, 1
        )
        size = min(size, fitting)
        return [
            slice(start, min(start + size, block.stop))
            for start in range(block.start, block.stop, size)
        ]

    def _search_scratch(self, h, c, block, rows_per_input, model):
        """A block's state, and this thread's buffers for a search of
        ``rows_per_input`` rows per input (1 greedy, the width for beams):
        ``(h, c, log_probs, buffer)``."""
        block_h = np.ascontiguousarray(h[:, block])
        block_c = np.ascontiguousarray(c[:, block])
        rows = (block.stop - block.start) * rows_per_input
        size = kernels.search_scratch_size(
            rows, model, *block_h.shape[::2], block_c.shape[2]
        )
        buffer = _thread_scratch(size, self.step.dtype)[:size]
        log_probs = _thread_scratch(
            rows * self.vocab_size, np.dtype(np.float64), "log_probs"
        )
        return block_h, block_c, log_probs, buffer

    def _state_parts(self, state, rows):
        """``[h, c]`` of ``state`` for the kernels (``c`` empty but for LSTMs)."""
        dtype = self.step.dtype
        if self.step.cell == "lstm":
            return [np.ascontiguousarray(part, dtype=dtype) for part in state]
        state = np.ascontiguousarray(state, dtype=dtype)
        empty = np.empty((self.step.num_layers, rows, 0), dtype=self.step.dtype)
        return [state, empty]

    def step_rows(self, tokens, rows, state, model, attention_weights=None):
        """One decoding step of every row.

        Parameters
        ----------
        tokens, rows : int64 ndarray of shape (N,)
            Input token and conditioning row of each row.
        state : ndarray of shape (L, N, H), or a tuple (h, c) for LSTMs
            C-contiguous, not modified.
        model : tuple
            From :meth:`kernel_model`.
        attention_weights : ndarray of shape (N, S), optional
            Out: the attention weights.

        Returns
        -------
        log_probs : float64 ndarray of shape (N, V)
        state : the new state

        Raises
        ------
        ValueError
            When the state or the log-probabilities are not finite.
        """
        count = len(tokens)
        h, c = self._state_parts(state, count)
        h_out, c_out = np.empty_like(h), np.empty_like(c)
        log_probs = np.empty((count, self.vocab_size))
        if attention_weights is None:
            positions = model[kernels.MODEL_MEMORY].shape[1]
            attention_weights = np.empty((count, positions), self.step.dtype)

        def run(block):
            parts = [part[:, block] for part in (h, c, h_out, c_out)]
            whole = block == slice(0, count)
            if not whole:
                parts = [np.ascontiguousarray(part) for part in parts]
            size = kernels.scratch_size(block.stop - block.start, model)
            buffer = _thread_scratch(size, self.step.dtype)[:size]
            out = log_probs[block]
            weights = attention_weights[block]
            status = kernels.decoder_step(
                tokens[block], rows[block], _NO_PARENTS, model, *parts, out,
                weights, buffer,
            )  # fmt: skip
            if not whole:
                h_out[:, block] = parts[2]
                c_out[:, block] = parts[3]
            return status

        _raise_for(max(self._on_threads(run, count)), None, None)
        new_state = (h_out, c_out) if self.step.cell == "lstm" else h_out
        return log_probs, new_state

    def greedy(self, first, rows, state, model, *, eos, max_length, min_length):
        """Greedy search of every row to ``<eos>`` or ``max_length`` tokens.

        Returns
        -------
        emitted : int64 ndarray of shape (N, max_length)
            The tokens of row ``n`` are ``emitted[n, :lengths[n]]``, then
            ``eos`` where it was emitted, then 0.
        lengths : int64 ndarray of shape (N,)
            Tokens emitted before ``eos``.
        scores : float64 ndarray of shape (N,)
            Summed log-probabilities of the emitted tokens, ``eos`` included.
        """
        count = len(first)
        first = np.ascontiguousarray(first, dtype=np.int64)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        h, c = self._state_parts(state, count)
        emitted = np.zeros((count, max_length), dtype=np.int64)
        lengths = np.empty(count, dtype=np.int64)
        scores = np.empty(count)

        def run(block):
            for chunk in self._chunks(block, model, 1):
                chunk_h, chunk_c, log_probs, buffer = self._search_scratch(
                    h, c, chunk, 1, model
                )
                status, row, t = kernels.greedy_block(
                    first[chunk], rows[chunk], chunk_h, chunk_c, model,
                    self.vocab_size, eos, max_length, min_length, emitted[chunk],
                    lengths[chunk], scores[chunk], log_probs, buffer,
                )  # fmt: skip
                if status != kernels.OK:
                    break
            return status, (chunk.start + row if row >= 0 else row), t

        for status, row, t in self._on_threads(run, count, steps=max_length):
            _raise_for(status, row, t, min_length)
        return emitted, lengths, scores

    def beam(self, first, rows, state, model, *, eos, max_length, min_length,
             beam_width, n_best, alpha):  # fmt: skip
        """Beam search of every row, as :func:`rnntools.decoding.beam_search`
        (see there), a block of rows per thread with no Python between steps.

        Returns
        -------
        tokens : int64 ndarray of shape (N, n_best, max_length)
            The tokens of hypothesis ``j`` of row ``n`` (best first) are
            ``tokens[n, j, :lengths[n, j]]``; the rest is 0.
        lengths : int64 ndarray of shape (N, n_best)
        scores : float64 ndarray of shape (N, n_best)
            Their scores; ``-inf`` past ``counts[n]``.
        counts : int64 ndarray of shape (N,)
            Hypotheses found per row: ``n_best`` unless the model gives fewer
            distinct sequences a non-zero probability.
        """
        count = len(first)
        first = np.ascontiguousarray(first, dtype=np.int64)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        h, c = self._state_parts(state, count)
        tokens = np.zeros((count, n_best, max_length), dtype=np.int64)
        lengths = np.zeros((count, n_best), dtype=np.int64)
        scores = np.full((count, n_best), -np.inf)
        counts = np.empty(count, dtype=np.int64)

        def run(block):
            for chunk in self._chunks(block, model, beam_width):
                chunk_h, chunk_c, log_probs, buffer = self._search_scratch(
                    h, c, chunk, beam_width, model
                )
                status, row, t = kernels.beam_block(
                    first[chunk], rows[chunk], chunk_h, chunk_c, model,
                    self.vocab_size, eos, max_length, min_length, beam_width,
                    n_best, float(alpha), tokens[chunk], lengths[chunk],
                    scores[chunk], counts[chunk], log_probs, buffer,
                )  # fmt: skip
                if status != kernels.OK:
                    break
            return status, (chunk.start + row if row >= 0 else row), t

        results = self._on_threads(run, count, steps=max_length * beam_width)
        for status, row, t in results:
            _raise_for(status, row, t, min_length)
        return tokens, lengths, scores, counts


def _raise_for(status, row, t, min_length=0):
    """The error of a kernel's status code (nothing for ``OK``), as
    :mod:`rnntools.decoding` words it."""
    where = "" if row is None else f" (row {row}, step {t})"
    eos_note = (
        f" (eos_id is forbidden until min_length={min_length} tokens)"
        if row is not None and t < min_length
        else ""
    )
    if status == kernels.NON_FINITE_STATE:
        raise ValueError(f"The decoder's state holds NaN or infinity{where}.")
    if status == kernels.NON_FINITE_LOG_PROBS:
        raise ValueError(
            f"The decoder's log-probabilities hold NaN or +inf{where}: the "
            "model's parameters are not usable."
        )
    if status == kernels.NO_ALLOWED_TOKEN:
        raise ValueError(
            f"Every token allowed to row {row} has log-probability -inf at step "
            f"{t}{eos_note}."
        )
    if status == kernels.NO_CONTINUATION:
        raise ValueError(
            f"Every continuation of row {row} has log-probability -inf at step "
            f"{t}{eos_note}."
        )
