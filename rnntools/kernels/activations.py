"""Vectorisable sigmoid and tanh for ``@njit`` kernels.

``math.exp`` and ``math.tanh`` are opaque library calls to LLVM: a loop that
calls them is not vectorised (Numba has no SVML here), and was measured ~60x
slower than NumPy's SIMD ``np.tanh``. The functions below evaluate
``exp``/``expm1`` with plain arithmetic that LLVM turns into AVX/AVX-512 code:

* Cody–Waite range reduction ``a = r - k ln2`` with ``|r| <= ln2 / 2``;
* a degree-12 Taylor polynomial for ``expm1(r)`` (truncation error below
  ``0.35**13 / 13! ~ 2e-16`` relative, i.e. within an ulp in float64);
* ``2**-k`` built from its IEEE-754 bits in an ``int64`` buffer that is then
  viewed as ``float64`` — a bit cast that vectorises, unlike ``ldexp``.

Only arguments ``a <= 0`` are needed (``sigmoid`` and ``tanh`` are evaluated
on ``-|z|`` and reflected), so nothing can overflow; arguments are clamped at
``-87`` where ``exp`` is below ``2e-38``, i.e. exactly saturated in float32 and
below any meaningful contribution in float64.

Typed constants come from :func:`constants`, an overload that returns float32
constants for float32 arrays: a bare Python literal would silently promote
float32 arithmetic to float64.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

_EXP_FLOOR = -87.0
_LOG2E = 1.4426950408889634
# ln 2 split so that k * hi is exact for the k that occur (k <= 126).
_LN2_HI_F64 = 6.93147180369123816490e-01
_LN2_LO_F64 = 1.90821492927058770002e-10
_LN2_HI_F32 = 0.693359375
_LN2_LO_F32 = -2.12194440e-4


def constants(reference):
    """Typed constants for an array's dtype (implemented by the overload)."""
    raise NotImplementedError("constants() is only callable from @njit code")


def _make_constants(scalar):
    zero = scalar(0.0)
    one = scalar(1.0)
    two = scalar(2.0)
    half = scalar(0.5)
    floor = scalar(_EXP_FLOOR)
    log2e = scalar(_LOG2E)
    if scalar is np.float32:
        ln2_hi, ln2_lo = scalar(_LN2_HI_F32), scalar(_LN2_LO_F32)
    else:
        ln2_hi, ln2_lo = scalar(_LN2_HI_F64), scalar(_LN2_LO_F64)

    def impl(reference):
        return zero, one, two, half, floor, log2e, ln2_hi, ln2_lo

    return impl


def cast(reference, value):
    """``value`` converted to ``reference``'s dtype (implemented by the overload)."""
    raise NotImplementedError("cast() is only callable from @njit code")


@overload(cast, jit_options={"cache": True})
def _cast_overload(reference, value):
    if isinstance(reference, types.Array) and reference.dtype == types.float32:
        return lambda reference, value: np.float32(value)
    if isinstance(reference, types.Array) and reference.dtype == types.float64:
        return lambda reference, value: np.float64(value)
    return None


@overload(constants, jit_options={"cache": True})
def _constants_overload(reference):
    if isinstance(reference, types.Array) and reference.dtype == types.float32:
        return _make_constants(np.float32)
    if isinstance(reference, types.Array) and reference.dtype == types.float64:
        return _make_constants(np.float64)
    return None


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def expm1_parts(a, pm1, scale_bits):
    """Split ``exp(a) = 2**-k * (1 + pm1)`` for ``a <= 0``, elementwise.

    Parameters
    ----------
    a : ndarray of shape (n,)
        Arguments, ``<= 0``. Must not overlap ``pm1``: LLVM's runtime alias
        check sends overlapping (even identical) arrays down the scalar path,
        measured 4x slower.
    pm1 : ndarray of shape (n,)
        Output: ``expm1(r)`` of the reduced argument ``r``.
    scale_bits : int64 ndarray of shape (n,)
        Output: IEEE-754 float64 bits of ``2**-k``; ``scale_bits.view(float64)``.
    """
    _, one, _, half, floor, log2e, ln2_hi, ln2_lo = constants(pm1)
    c2 = one / 2
    c3 = c2 / 3
    c4 = c3 / 4
    c5 = c4 / 5
    c6 = c5 / 6
    c7 = c6 / 7
    c8 = c7 / 8
    c9 = c8 / 9
    c10 = c9 / 10
    c11 = c10 / 11
    c12 = c11 / 12
    for j in range(a.shape[0]):
        x = a[j]
        if x < floor:
            x = floor
        k = np.int64(half - x * log2e)
        scale_bits[j] = (1023 - k) << 52
        kf = cast(pm1, k)
        r = x + kf * ln2_hi + kf * ln2_lo
        q = c12
        q = q * r + c11
        q = q * r + c10
        q = q * r + c9
        q = q * r + c8
        q = q * r + c7
        q = q * r + c6
        q = q * r + c5
        q = q * r + c4
        q = q * r + c3
        q = q * r + c2
        q = q * r + one
        pm1[j] = q * r


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def sigmoid(z, out, work, scale_bits):
    """``out = 1 / (1 + exp(-z))`` without overflow, elementwise.

    Parameters
    ----------
    z : ndarray of shape (n,)
        Pre-activations. Must not overlap ``out`` (see :func:`expm1_parts`).
    out : ndarray of shape (n,)
        Output.
    work : ndarray of shape (>= 2 n,)
        Scratch of the same dtype.
    scale_bits : int64 ndarray of shape (>= n,)
        Scratch.
    """
    zero, one, _, _, _, _, _, _ = constants(out)
    n = z.shape[0]
    argument = work[:n]
    pm1 = work[n : 2 * n]
    bits = scale_bits[:n]
    for j in range(n):
        argument[j] = -abs(z[j])
    expm1_parts(argument, pm1, bits)
    scale = bits.view(np.float64)
    for j in range(n):
        s = cast(out, scale[j])
        e = s + s * pm1[j]  # exp(-|z|), accurate even when tiny
        numerator = one if z[j] >= zero else e
        out[j] = numerator / (one + e)


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def tanh(z, out, work, scale_bits):
    """``out = tanh(z)`` without overflow, elementwise.

    Uses ``tanh(|z|) = -m / (2 + m)`` with ``m = expm1(-2|z|)``, which keeps
    full relative accuracy near 0 (no ``1 - exp`` cancellation).

    Parameters
    ----------
    z : ndarray of shape (n,)
        Arguments. Must not overlap ``out`` (see :func:`expm1_parts`).
    out : ndarray of shape (n,)
        Output.
    work : ndarray of shape (>= 2 n,)
        Scratch of the same dtype.
    scale_bits : int64 ndarray of shape (>= n,)
        Scratch.
    """
    zero, one, two, _, _, _, _, _ = constants(out)
    n = z.shape[0]
    argument = work[:n]
    pm1 = work[n : 2 * n]
    bits = scale_bits[:n]
    for j in range(n):
        argument[j] = -two * abs(z[j])
    expm1_parts(argument, pm1, bits)
    scale = bits.view(np.float64)
    for j in range(n):
        s = cast(out, scale[j])
        m = s * pm1[j] + (s - one)  # expm1(-2|z|)
        magnitude = -m / (two + m)
        out[j] = magnitude if z[j] >= zero else -magnitude
