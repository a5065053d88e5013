"""Fleiss' kappa and Krippendorff's alpha against the worked examples of their textbook sources."""

import numpy as np
import pytest

from judgelm.scoring.agreement import category_counts, fleiss_kappa, krippendorff_alpha

N = np.nan


def test_fleiss_kappa_on_fleiss_1971_worked_example():
    # 10 subjects, 14 raters, 5 categories (the example of Fleiss' kappa's Wikipedia article): P̄ = 0.378,
    # P̄e = 0.213, κ = 0.210
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa(category_counts(np.array([[1, 1], [0, 0], [-1, -1]]), np.array([-1, 0, 1]))) == 1.0
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 0]]))


def test_krippendorff_alpha_on_krippendorff_2011_worked_example():
    # 4 observers × 12 units with missing values (Krippendorff 2011, section C): α nominal 0.743, interval 0.849
    data = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
                     [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]])
    assert krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]])) == 1.0
    assert np.isnan(krippendorff_alpha(np.array([[1, N], [N, 2]])))  # no unit has two ratings
