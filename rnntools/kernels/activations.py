"""Vectorisable sigmoid and tanh for ``@njit`` kernels.

``math.exp`` and ``math.tanh`` are opaque library calls to LLVM: a loop that
calls them is not vectorised (Numba has no SVML here), and was measured ~60x
slower than NumPy's SIMD ``np.tanh``. The functions below evaluate
``exp``/``expm1`` with plain arithmetic that LLVM turns into AVX/AVX-512 code:

* Cody–Waite range reduction ``a = r - k ln2`` with ``|r| <= ln2 / 2``;
* a Taylor polynomial for ``expm1(r)``: degree 12 in float64 (truncation error
  below ``0.35**13 / 13! ~ 2e-16`` relative) and degree 8 in float32
  (``0.35**9 / 9! ~ 2e-9``), i.e. within an ulp of the dtype;
* ``2**-k`` built from its IEEE-754 bits by a bit cast in a register
  (:func:`_float_from_bits`), which vectorises, unlike ``ldexp``.

Only arguments ``a <= 0`` are needed (``sigmoid`` and ``tanh`` are evaluated
on ``-|z|`` and reflected), so nothing can overflow. Where ``exp(a)`` would be
a subnormal number (``a < -87.33`` in float32, ``a < -708.39`` in float64) it is
flushed to zero: arithmetic on subnormals takes a slow microcode path on x86
(measured 4-10x slower for whole gate blocks once long sequences saturate the
cell state), and a gate value below 1e-38 has no effect on anything. So
``sigmoid(z)`` is exactly 0 for ``z < -87.33`` (float32) and ``tanh`` is
exactly ``+-1`` past ``|z| = 43.67``.

Typed constants come from overloads that return float32 constants for float32
arrays: a bare Python literal would silently promote float32 arithmetic to
float64.

Measured here (AVX-512, 4096 elements): about 0.5 ns per float32 element and
1 ns per float64 element, against 4-5 ns for a loop over ``math.tanh``.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import OVERLOAD_OPTIONS, helper, wide_vectors

# Just above log(smallest normal number): below these, exp() is subnormal and
# flushed to zero.
_EXP_FLOOR_F32 = -87.33
_EXP_FLOOR_F64 = -708.39
_LOG2E = 1.4426950408889634
# ln 2 split so that k * hi is exact for the k that occur.
_LN2_HI_F64 = 6.93147180369123816490e-01
_LN2_LO_F64 = 1.90821492927058770002e-10
_LN2_HI_F32 = 0.693359375
_LN2_LO_F32 = -2.12194440e-4


def _float_kind(array_type):
    """``np.float32``/``np.float64`` for a Numba array type, else None."""
    if isinstance(array_type, types.Array):
        if array_type.dtype == types.float32:
            return np.float32
        if array_type.dtype == types.float64:
            return np.float64
    return None


def constants(reference):
    """``(zero, one, two)`` in ``reference``'s dtype (for ``@njit`` code)."""
    raise NotImplementedError("only callable from @njit code")


@overload(constants, jit_options=OVERLOAD_OPTIONS)
def _constants_overload(reference):
    scalar = _float_kind(reference)
    if scalar is None:
        return None
    zero, one, two = scalar(0.0), scalar(1.0), scalar(2.0)
    return lambda reference: (zero, one, two)


def constants_of(value):
    """``(zero, one, two)`` of a scalar's dtype (for ``@njit`` code)."""
    raise NotImplementedError("only callable from @njit code")


@overload(constants_of, jit_options=OVERLOAD_OPTIONS)
def _constants_of_overload(value):
    if value == types.float32:
        scalar = np.float32
    elif value == types.float64:
        scalar = np.float64
    else:
        return None
    zero, one, two = scalar(0.0), scalar(1.0), scalar(2.0)
    return lambda value: (zero, one, two)


def _reduce(x):
    """``(k, r)`` with ``x = r - k ln2``, ``k >= 0`` integer, ``|r| <= ln2/2``;
    ``(-1, 0)`` where ``exp(x)`` is subnormal (flushed to zero)."""
    raise NotImplementedError("only callable from @njit code")


@overload(_reduce, jit_options=OVERLOAD_OPTIONS)
def _reduce_overload(x):
    if x == types.float32:
        scalar, integer = np.float32, np.int32
        ln2_hi, ln2_lo = scalar(_LN2_HI_F32), scalar(_LN2_LO_F32)
        floor = scalar(_EXP_FLOOR_F32)
    elif x == types.float64:
        scalar, integer = np.float64, np.int64
        ln2_hi, ln2_lo = scalar(_LN2_HI_F64), scalar(_LN2_LO_F64)
        floor = scalar(_EXP_FLOOR_F64)
    else:
        return None
    half, log2e = scalar(0.5), scalar(_LOG2E)
    flushed = integer(-1)

    def impl(x):
        clamped = x
        if clamped < floor:
            clamped = floor
        k = integer(half - clamped * log2e)
        kf = scalar(k)
        r = clamped + kf * ln2_hi + kf * ln2_lo
        if x < floor:
            k = flushed
        return k, r

    return impl


def _expm1_reduced(r):
    """``expm1(r)`` for ``|r| <= ln2/2`` by a Taylor polynomial."""
    raise NotImplementedError("only callable from @njit code")


@overload(_expm1_reduced, jit_options=OVERLOAD_OPTIONS)
def _expm1_reduced_overload(r):
    if r == types.float32:
        degree, scalar = 8, np.float32
    elif r == types.float64:
        degree, scalar = 12, np.float64
    else:
        return None
    # 1/(i+1)! for i = degree-1 .. 0, Horner order, in the working dtype.
    factorials = np.cumprod(np.arange(1, degree + 1, dtype=np.float64))
    c = tuple(scalar(1.0 / f) for f in factorials[::-1])
    if degree == 8:

        def impl(r):
            q = c[0]
            for i in range(1, 8):
                q = q * r + c[i]
            return q * r

    else:

        def impl(r):
            q = c[0]
            for i in range(1, 12):
                q = q * r + c[i]
            return q * r

    return impl


@intrinsic
def _float_from_bits(typingctx, reference, bits):
    """The float of ``reference``'s dtype whose IEEE-754 bits are ``bits``
    (truncated or sign-extended to its width): a bit cast in a register,
    which LLVM vectorises (where storing the bits through an integer view of
    a float array and loading them back took a second pass over memory)."""
    if not isinstance(reference, types.Array) or not isinstance(bits, types.Integer):
        return None
    result = reference.dtype
    if result not in (types.float32, types.float64):
        return None
    width = result.bitwidth

    def codegen(context, builder, signature, args):
        value = args[1]
        if bits.bitwidth > width:
            value = builder.trunc(value, ir.IntType(width))
        elif bits.bitwidth < width:
            value = builder.sext(value, ir.IntType(width))
        return builder.bitcast(value, context.get_value_type(result))

    return result(reference, bits), codegen


def _exp_parts(reference, a):
    """``(scale, pm1)`` with ``exp(a) = scale * (1 + pm1)`` for ``a <= 0``,
    in registers (for ``@njit`` code; :func:`expm1_parts` over arrays)."""
    raise NotImplementedError("only callable from @njit code")


@overload(_exp_parts, jit_options=OVERLOAD_OPTIONS)
def _exp_parts_overload(reference, a):
    if _float_kind(reference) is None:
        return None

    def impl(reference, a):
        k, r = _reduce(a)
        scale = _float_from_bits(reference, _exponent_field(reference, k))
        return scale, _expm1_reduced(r)

    return impl


@helper
def expm1_parts(a, pm1, scale):
    """Split ``exp(a) = scale * (1 + pm1)`` for ``a <= 0``, elementwise.

    Parameters
    ----------
    a : ndarray of shape (n,)
        Arguments, ``<= 0``. Must not overlap the outputs: LLVM's runtime
        alias check sends overlapping (even identical) arrays down the scalar
        path, measured 4x slower.
    pm1 : ndarray of shape (n,)
        Output: ``expm1(r)`` of the reduced argument ``r``.
    scale : ndarray of shape (n,)
        Output: the power of two ``2**-k``, exact; 0 where ``exp(a)`` is
        flushed to zero.
    """
    wide_vectors()
    for j in range(a.shape[0]):
        scale[j], pm1[j] = _exp_parts(scale, a[j])


def _exponent_field(scale, k):
    """IEEE-754 bits of ``2**-k`` in ``scale``'s dtype (for ``@njit`` code)."""
    raise NotImplementedError("only callable from @njit code")


@overload(_exponent_field, jit_options=OVERLOAD_OPTIONS)
def _exponent_field_overload(scale, k):
    scalar = _float_kind(scale)
    if scalar is np.float32:
        integer, bias, shift = np.int32, 127, 23
    elif scalar is np.float64:
        integer, bias, shift = np.int64, 1023, 52
    else:
        return None
    bias, shift, zero = integer(bias), integer(shift), integer(0)
    return lambda scale, k: zero if k < 0 else (bias - k) << shift


@helper
def _sigmoid_from_parts(z, pm1, scale):
    """``sigmoid(z)`` from :func:`expm1_parts` of ``-|z|``."""
    zero, one, _ = constants_of(z)
    e = scale + scale * pm1  # exp(-|z|), accurate even when tiny
    numerator = one if z >= zero else e
    return numerator / (one + e)


@helper
def _tanh_from_parts(z, pm1, scale):
    """``tanh(z)`` from :func:`expm1_parts` of ``-2|z|``.

    ``tanh(|z|) = -m / (2 + m)`` with ``m = expm1(-2|z|)`` keeps full relative
    accuracy near 0 (no ``1 - exp`` cancellation); ``copysign`` keeps it odd,
    also at ``+-0``.
    """
    zero, one, two = constants_of(z)
    m = scale * pm1 + (scale - one)
    return np.copysign((zero - m) / (two + m), z)


@helper
def sigmoid(z, out):
    """``out = 1 / (1 + exp(-z))`` without overflow, elementwise.

    One vectorised pass: ``exp(-|z|)`` is computed in registers
    (:func:`_exp_parts`), bit for bit as :func:`expm1_parts` computes it.

    Parameters
    ----------
    z : ndarray of shape (n,)
        Pre-activations. May be ``out`` itself (correct, but LLVM's runtime
        alias check then takes the scalar loop, see :func:`expm1_parts`).
    out : ndarray of shape (n,)
        Output.
    """
    wide_vectors()
    for j in range(z.shape[0]):
        out[j] = sigmoid_value(out, z[j])


@helper
def tanh(z, out):
    """``out = tanh(z)`` without overflow, elementwise, in one vectorised
    pass (as :func:`sigmoid`).

    Parameters
    ----------
    z : ndarray of shape (n,)
        Arguments. May be ``out`` itself (as in :func:`sigmoid`).
    out : ndarray of shape (n,)
        Output.
    """
    wide_vectors()
    for j in range(z.shape[0]):
        out[j] = tanh_value(out, z[j])


@helper
def sigmoid_value(reference, z):
    """``sigmoid(z)`` of one number, as :func:`sigmoid` computes it
    (``reference``: any array of ``z``'s dtype, which types the constants),
    for kernels that keep each element's activations in registers (see
    :func:`.cpu.gru_step`)."""
    scale, pm1 = _exp_parts(reference, -abs(z))
    return _sigmoid_from_parts(z, pm1, scale)


@helper
def tanh_value(reference, z):
    """``tanh(z)`` of one number, as :func:`tanh` computes it (see
    :func:`sigmoid_value`)."""
    _, _, two = constants(reference)
    scale, pm1 = _exp_parts(reference, -two * abs(z))
    return _tanh_from_parts(z, pm1, scale)


@helper
def gate_activations(gates, tanh_columns):
    """``gates = activation(gates)`` in place, sigmoid or tanh by column,
    over a block of gate pre-activations.

    One branch-free vectorised pass over all rows (the recurrent product is
    already added in by :func:`.row_invariant.row_invariant_matmul_add`): one
    call per timestep rather than one per sequence and gate. Writing in place
    rather than to a buffer copied afterwards made an LSTM forward layer
    6-15 % faster (one thread, B x H = 32 x 128 and 16 x 64); computing
    ``exp`` in registers rather than through scratch arrays in a second pass,
    30-37 % faster again, with the same bits. Tanh columns use
    ``tanh(x) = 2 sigmoid(2x) - 1``, whose error is absolute (within 2 ulp of
    1), not relative to a tiny ``tanh(x)``: what a gate value needs, but use
    :func:`tanh` where relative accuracy near 0 matters.

    Parameters
    ----------
    gates : ndarray of shape (rows, W)
        C-contiguous. In: the pre-activations. Out: the activations.
    tanh_columns : ndarray of shape (W,)
        Same dtype: 1 where the column takes sigmoid, 2 where it takes tanh.
    """
    wide_vectors()
    rows, width = gates.shape
    # ``gates[r, j]``, not a view per row: a view costs an atomic reference
    # count up and down.
    for r in range(rows):
        for j in range(width):
            gates[r, j] = gate_value(gates, gates[r, j], tanh_columns[j])


@helper
def gate_value(reference, z, factor):
    """One gate's activation, as :func:`gate_activations` computes it:
    ``sigmoid(z)`` for ``factor`` 1, ``tanh(z) = 2 sigmoid(2z) - 1`` for 2.

    ``reference`` is any array of ``z``'s dtype (it types the constants);
    for kernels that activate a cell's gates element by element, in
    registers (see :func:`.cpu.lstm_step`), with the bits of
    :func:`gate_activations`.
    """
    zero, one, _ = constants(reference)
    scale, pm1 = _exp_parts(reference, -factor * abs(z))
    e = scale + scale * pm1  # exp(-factor |z|)
    numerator = one if z >= zero else e
    return factor * (numerator / (one + e)) - (factor - one)
