"""edgesparse.counting against np.unique, its definition, on both of its methods: counting
(features few per index) and sorting (features far more than the indices)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgesparse.counting import column_counts, small_int_counts, used_columns

WIDEST = 0x7FFFFFFF  # the largest feature count a model may declare


@pytest.mark.parametrize("n_features", [1, 7, 1000, 1 << 20, (1 << 20) + 1, 1 << 24, WIDEST])
@pytest.mark.parametrize("size", [1, 2, 5, 300, 4096])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.intp])
def test_matches_np_unique(n_features: int, size: int, dtype: type) -> None:
    rng = np.random.default_rng(n_features + size)
    idx = rng.integers(0, n_features, size=size).astype(dtype)
    idx[: size // 3] = idx[-1]  # repeats, and the largest possible column where it fits
    if size > 1:
        idx[1] = n_features - 1
    want, want_counts = np.unique(idx, return_counts=True)
    got = used_columns(idx, n_features=n_features)
    got2, counts = column_counts(idx, n_features=n_features)
    for arr in (got, got2, counts):
        assert arr.dtype == np.int64
    assert got.tolist() == want.tolist() == got2.tolist()
    assert counts.tolist() == want_counts.tolist()


def test_hand_computed() -> None:
    idx = np.array([5, 0x7FFFFFFE, 5, 3, 0x7FFFFFFE, 5], dtype=np.int32)
    used, counts = column_counts(idx, n_features=WIDEST)
    assert used.tolist() == [3, 5, 0x7FFFFFFE]
    assert counts.tolist() == [1, 3, 2]
    used, counts = column_counts(idx[:4] % 8, n_features=8)  # [5, 6, 5, 3]
    assert used.tolist() == [3, 5, 6]
    assert counts.tolist() == [1, 2, 1]


@pytest.mark.parametrize("n_features", [1, WIDEST])
def test_empty(n_features: int) -> None:
    assert used_columns(np.zeros(0, np.int32), n_features=n_features).tolist() == []
    used, counts = column_counts(np.zeros(0, np.int64), n_features=n_features)
    assert used.tolist() == counts.tolist() == []


def test_small_int_counts() -> None:
    v = np.array([-128, 127, 0, 0, -3, 127], dtype=np.int8)
    values, counts = small_int_counts(v)
    assert values.tolist() == [-128, -3, 0, 127]
    assert counts.tolist() == [1, 1, 2, 2]


def test_widest_model_costs_its_indices_not_its_width() -> None:
    """A few indices of a 2^31 - 1 feature model under a 512 MiB address-space limit: counting
    would allocate 16 GiB of counts (and fail here); the sort needs the indices' bytes."""
    code = textwrap.dedent(
        """
        import resource
        import numpy as np
        from edgesparse.counting import column_counts, used_columns
        idx = np.array([7, 0x7FFFFFFE, 7], dtype=np.int32)
        limit = 512 << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(used_columns(idx, n_features=0x7FFFFFFF).tolist(),
              [a.tolist() for a in column_counts(idx, n_features=0x7FFFFFFF)])
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[0] == "[7, 2147483646] [[7, 2147483646], [2, 1]]"
