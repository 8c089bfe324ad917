"""Installation properties: import and run where Numba's cache cannot be written."""

import os
import subprocess
import sys
import textwrap

import pytest

from rnntools.kernels._jit import _l2_cache_bytes, _simd


def test_import_and_run_without_a_writable_cache():
    # Numba raises at decoration time when no cache locator is usable (a
    # read-only install with an unwritable home): simulate that by removing
    # every locator before rnntools is imported.
    code = textwrap.dedent(
        """
        import numba.core.caching as caching
        caching.CacheImpl._locator_classes = []
        import numpy as np
        import rnntools
        from rnntools.functional import rnn_backward, rnn_forward
        from rnntools.kernels import _jit
        assert _jit.CACHE is False
        params = rnntools.init_params("rnn", 2, 3, random_state=0)
        output, _, cache = rnn_forward(np.ones((2, 3, 2), np.float32), params, "rnn")
        rnn_backward(cache, np.ones_like(output))
        print("ok", output.shape)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "ok (2, 3, 3)" in result.stdout


def _fake_cache(directory, level, kind, size):
    directory.mkdir(parents=True)
    (directory / "level").write_text(f"{level}\n")
    (directory / "type").write_text(f"{kind}\n")
    (directory / "size").write_text(f"{size}\n")


@pytest.mark.parametrize(
    ("size", "expected"), [("2048K", 2**21), ("1M", 2**20), ("524288", 2**19)]
)
def test_l2_cache_size_is_read_from_sysfs(tmp_path, size, expected):
    _fake_cache(tmp_path / "index0", 1, "Data", "48K")
    _fake_cache(tmp_path / "index1", 1, "Instruction", "64K")
    _fake_cache(tmp_path / "index2", 2, "Unified", size)
    _fake_cache(tmp_path / "index3", 3, "Unified", "491520K")
    assert _l2_cache_bytes(tmp_path, default=1) == expected


def test_l2_cache_size_falls_back_where_sysfs_says_nothing(tmp_path):
    assert _l2_cache_bytes(tmp_path / "missing", default=12345) == 12345
    _fake_cache(tmp_path / "index0", 2, "Unified", "big")
    assert _l2_cache_bytes(tmp_path, default=12345) == 12345


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ("+avx,+avx2,+fma,+avx512f,+avx512vl", (64, 32)),
        ("+avx,+avx2,+fma,-avx512f,-avx512vl", (32, 16)),
        ("+avx,-avx2,-fma,-avx512f", (16, 16)),  # Sandy Bridge: no FMA
        ("+sse2,+sse4.2", (16, 16)),
        ("", (16, 16)),  # NUMBA_CPU_FEATURES set empty
    ],
)
def test_simd_width_follows_the_cpu_features(features, expected):
    assert _simd(features) == expected


#: LLVM's feature strings of two x86-64 CPUs of each SIMD width: the tiles
#: are compiled for them (not run) in a subprocess (Numba reads its target
#: CPU from the environment at import).
_TILE_TARGETS = {
    "AVX-512": ("skylake-avx512", "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw"),
    "AVX2": ("haswell", "+avx,+avx2,+fma,-avx512f"),
}


@pytest.mark.parametrize("target", ["host", *_TILE_TARGETS])
def test_register_tiles_fit_the_registers(target):
    # Tiles sized for AVX-512's 32 registers on an AVX2 CPU (16 registers)
    # kept their sums on the stack: every k reloaded and stored them, at a
    # third of the speed. The product compiled for each target must move no
    # vector register to or from the stack (two moves outside the loops, on
    # entry, are LLVM's choice on the Zen 3 of 2026-12-01; 3 x 4 tiles that
    # loaded all four vectors of b before their FMAs: 109).
    code = textwrap.dedent(
        """
        import re
        import numpy as np
        from numba import cfunc
        from rnntools.kernels import row_invariant
        from rnntools.kernels._jit import KERNEL_OPTIONS
        cell = row_invariant._PRODUCT_CELLS[np.dtype(np.float32)]
        product = cfunc(
            row_invariant._PRODUCT_SIGNATURE,
            cache=False,
            fastmath=KERNEL_OPTIONS["fastmath"],
            error_model=KERNEL_OPTIONS["error_model"],
        )(cell._function)
        asm = product._library.get_asm_str()
        stack = r"-?\\d+\\(%rsp\\)"
        register = r"%[yz]mm\\d+"
        moves = re.findall(
            rf"vmov\\w+\\s+(?:{stack}, {register}|{register}, {stack})", asm
        )
        print(row_invariant.VECTOR_BYTES, row_invariant.TILE_ROWS,
              asm.count("vfmadd"), len(moves))
        """
    )
    env = dict(os.environ)
    if target != "host":
        env["NUMBA_CPU_NAME"], env["NUMBA_CPU_FEATURES"] = _TILE_TARGETS[target]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    vector_bytes, tile_rows, fmas, stack_moves = map(int, result.stdout.split())
    expected = {"AVX-512": (64, 6), "AVX2": (32, 3)}.get(target)
    if expected is not None:
        assert (vector_bytes, tile_rows) == expected
    assert fmas > 50  # the tiles are there
    assert stack_moves <= 8, result.stdout


def test_wide_vectors_marks_the_kernel_and_keeps_the_bits():
    import numpy as np
    from llvmlite import binding
    from numba import njit

    from rnntools.kernels._jit import WIDE_VECTORS_ATTRIBUTE, wide_vectors

    def ratio(x, out):
        for i in range(x.shape[0]):
            out[i] = x[i] / (x[i] * x[i] + np.float32(1.5))

    def wide_ratio(x, out):
        wide_vectors()
        for i in range(x.shape[0]):
            out[i] = x[i] / (x[i] * x[i] + np.float32(1.5))

    # The kernels' options (error_model="numpy": a division that checks for
    # zero is never vectorised), without the cache (inspection needs the IR).
    options = {"fastmath": {"contract"}, "error_model": "numpy"}
    plain = njit(**options)(ratio)
    wide = njit(**options)(wide_ratio)
    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    expected, out = np.empty_like(x), np.empty_like(x)
    plain(x, expected)
    wide(x, out)
    # Same operations per lane at any vector width (1001: a remainder too).
    np.testing.assert_array_equal(out, expected)
    (ir,) = wide.inspect_llvm().values()
    assert WIDE_VECTORS_ATTRIBUTE in ir
    (plain_ir,) = plain.inspect_llvm().values()
    assert WIDE_VECTORS_ATTRIBUTE not in plain_ir
    if "+avx512f" in binding.get_host_cpu_features().flatten():
        (asm,) = wide.inspect_asm().values()
        assert "vdivps\t%zmm" in asm


def test_a_helper_runs_in_kernels_and_refuses_python_callers():
    import numpy as np
    from numba import njit

    from rnntools.kernels import activations, cpu
    from rnntools.kernels._jit import helper

    def add_one(values):
        for i in range(values.shape[0]):
            values[i] += 1

    add_one_helper = helper(add_one)

    @njit
    def kernel(values):
        add_one_helper(values)
        return values.sum()

    assert kernel(np.zeros(3)) == 3
    # No Python wrapper was compiled: Numba's own dispatch from Python would
    # jump to a null entry point (a segfault); the helper refuses instead.
    with pytest.raises(TypeError, match=r"add_one is compiled only into"):
        add_one_helper(np.zeros(3))
    # The package's helpers, compiled into kernels elsewhere in the suite.
    z = np.zeros(2, np.float32)
    with pytest.raises(TypeError, match=r"activations\.tanh is compiled only"):
        activations.tanh(z, z)
    with pytest.raises(TypeError, match="no Python entry point"):
        cpu._copy(z, z)
