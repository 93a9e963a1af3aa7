"""The one table of conformance tolerances: how far a backend may stray from the reference.

A value passes when ``|got - expected| <= atol + rtol * |expected|``, element by element (as
``numpy.allclose``). Every check feeds both sides the same numbers: host inputs are O(1) and
rounded to float32 before either side sees them, so these bounds cover the arithmetic only,
not the rounding of the inputs. The reference is NumPy in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tolerance", "TOLERANCES", "FINITE_DIFFERENCE_STEP", "tolerance"]

# Step of the central differences (float64 only): the truncation error h^2 |f'''| / 6 ~ 1e-13
# and the rounding error u |f| / h ~ 1e-10 balance near h = u^(1/3) ~ 6e-6.
FINITE_DIFFERENCE_STEP = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """Relative and absolute tolerance of one kind of result in one dtype."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"


# kind of result -> dtype -> tolerance. The unit roundoff u is 1.1e-16 in float64, 6.0e-8 in
# float32.
TOLERANCES: dict[str, dict[str, Tolerance]] = {
    # Numbers drawn on the host and moved once (initial weights, dropout masks), integers
    # (argmax) and counts (accuracies): every backend must give the very same bits.
    "exact": {"float32": Tolerance(0.0, 0.0), "float64": Tolerance(0.0, 0.0)},
    # A few elementwise operations (exp, log, sqrt, division; optimizer steps): the libraries'
    # math functions differ by 1-2 ulp (glibc, SLEEF in torch, CUDA's libdevice) and a GPU
    # fuses multiply-adds (FMA) where the CPU rounds twice. A handful of operations in a row
    # gives < 20 u; rtol leaves > 10x margin, atol covers results that cancel to ~0.
    "elementwise": {"float32": Tolerance(2e-5, 1e-6), "float64": Tolerance(1e-12, 1e-14)},
    # Sums, means and matrix products of up to 16 terms (Dense, Softmax, losses): the order of
    # accumulation differs between BLAS on the CPU (blocked, SIMD lanes) and a GPU (tree
    # reductions, split-K matmul), and the error bound is n u sum|terms|, ~1e-6 in float32 for
    # n = 16 and O(1) terms. Where terms cancel the relative error is unbounded, hence atol.
    "reduction": {"float32": Tolerance(1e-4, 1e-5), "float64": Tolerance(1e-10, 1e-12)},
    # Analytic gradients against central differences, in float64 only (in float32 the best
    # step leaves errors ~1e-3: too coarse to see a bug). The step above gives ~1e-9 abs error
    # on O(1) gradients; a wrong formula is off by O(1).
    "gradient": {"float64": Tolerance(1e-6, 1e-7)},
    # Loss curves of the book's spiral model (nnx.testing.training) against NumPy float64,
    # first over the opening 20 epochs, then over all 200. Training amplifies rounding
    # differences: whenever a ReLU input crosses 0 an epoch earlier on one side, and whenever
    # an adaptive optimizer divides a gradient that is rounding noise by its own size, the
    # trajectories move apart. Measured amplification is ~1e5 over 200 epochs (torch float64
    # vs NumPy float64: < 3e-11 relative; float32 vs float64: < 3.2e-3 with Adam, < 3e-4
    # with the others), and nil in the opening epochs (float32 < 1.5e-7, float64 < 1e-15).
    # So the opening is held tight (60x margin in float32) and catches a wrong step at once;
    # the whole curve is held to 2e-2 in float32 (6x margin) and 1e-8 in float64.
    "training-early": {"float32": Tolerance(1e-5, 0.0), "float64": Tolerance(1e-12, 0.0)},
    "training": {"float32": Tolerance(2e-2, 0.0), "float64": Tolerance(1e-8, 0.0)},
}


def tolerance(kind: str, dtype: str) -> Tolerance:
    """The tolerance of results of ``kind`` in ``dtype`` (``"float32"`` or ``"float64"``)."""
    try:
        return TOLERANCES[kind][dtype]
    except KeyError as err:
        raise ValueError(
            f"tolerance: no entry for kind={kind!r}, dtype={dtype!r}. Kinds: "
            f"{', '.join(TOLERANCES)}; add the row to nnx.testing.tolerances.TOLERANCES."
        ) from err
