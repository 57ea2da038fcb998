"""How close two float32 computations of the same mathematics must be, on any CPU.

Two programs that compute one function in float32 (two XLA programs, or XLA and PyTorch) agree only up
to rounding: each compiler reassociates sums, fuses operations and picks kernels for the CPU it runs on
(vector width, FMA), so the difference grows with the depth of the computation and changes with the
CPU model. One such difference broke CI: an unrolled layer scan against the same layers called one by
one differed by 1.5e-5 where the values reach 4 (about 30 units in the last place of the largest value)
on one CPU and passed at 1e-5 on another.

So a comparison between two programs is relative to the values' scale: `SCALE_TOLERANCE` of the largest
magnitude of the expected values, about 840 float32 units in the last place of it, 30 times what such
differences reach, while every mistake these tests look for (a wrong mask, a dropped term, a wrong scale,
another dropout draw) moves values by a large fraction of their scale. Exact equality is kept only where
both sides are one program.
"""

import numpy as np

SCALE_TOLERANCE = 1e-4


def assert_float32_close(actual, expected, *, scale_tolerance: float = SCALE_TOLERANCE, err_msg: str = "") -> None:
    """`actual` equals `expected` up to `scale_tolerance` x the largest |expected| (elementwise)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max(initial=0.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=scale_tolerance * scale,
                               err_msg=err_msg or f"tolerance {scale_tolerance} x scale {scale:.3g}")
