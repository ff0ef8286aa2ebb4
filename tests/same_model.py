"""One check for "these two training runs gave the same model" (data-parallel vs one device)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def assert_same_model(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], tol: float) -> None:
    """Every state entry equal within ``tol``, except that the content head's rank bias is
    compared per anime up to a shift shared by every anime.

    That bias only feeds softmaxes, which cannot see such a shift: along that direction the
    gradient is zero up to float noise, and Adam scales noise up to whole steps, so two runs
    that sum in another order drift apart there and nowhere else. The rating bias (row 0) is
    compared exactly.
    """
    for key in b:
        if not key.startswith("content_bias."):
            np.testing.assert_allclose(a[key], b[key], atol=tol, err_msg=key)
    if "content_bias.weight" not in b:
        return
    w_a, w_b = a["content_bias.weight"], b["content_bias.weight"]
    b_a, b_b = a["content_bias.bias"], b["content_bias.bias"]
    np.testing.assert_allclose(w_a[0], w_b[0], atol=tol, err_msg="content rating bias")
    np.testing.assert_allclose(b_a[0], b_b[0], atol=tol, err_msg="content rating bias")
    feats = b["item_genres"]
    shifted = (feats @ w_a[1] + b_a[1]) - (feats @ w_b[1] + b_b[1])
    np.testing.assert_allclose(shifted, shifted.mean(), atol=tol, err_msg="content rank bias")
