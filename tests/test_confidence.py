"""The interaction confidence: 1 + watch share + completed + scaled rating, each term only where present."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coursepilot.confidence import confidence_weights


def test_each_term_adds_where_the_column_and_the_value_exist():
    frame = pd.DataFrame(
        {"watch_pct": [50.0, None, 100.0], "completed": [True, False, None], "rating": [5.0, 2.0, None]}
    )
    # row 0: 1 + 0.5 + 1 + (5-1)/4; row 1: 1 + 0 + 0 + (2-1)/4; row 2: 1 + 1 + 0 + 0
    np.testing.assert_allclose(confidence_weights(frame, (1.0, 5.0)), [3.5, 1.25, 2.0])
    # without a rating scale the rating says nothing; without the columns every interaction weighs 1
    np.testing.assert_allclose(confidence_weights(frame, None), [2.5, 1.0, 2.0])
    np.testing.assert_allclose(confidence_weights(pd.DataFrame({"x": [1, 2]}), (1.0, 5.0)), [1.0, 1.0])
