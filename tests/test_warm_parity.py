"""benchmarks/warm_parity.py's summary: means, spreads and the gap, against hand arithmetic."""

from __future__ import annotations

import pytest

from benchmarks.warm_parity import format_table, summarise


def _run(model: str, seed: int, ndcg: float, rmse: float) -> dict[str, object]:
    return {"model": model, "train_seed": seed, "ndcg_at_10": ndcg, "rmse": rmse}


def test_summary_pairs_the_means_and_reports_the_gap_in_percent() -> None:
    runs = [
        _run("content", 0, 0.50, 1.20),
        _run("free", 0, 0.52, 1.21),
        _run("content", 1, 0.54, 1.22),
        _run("free", 1, 0.48, 1.23),
    ]
    s = summarise(runs, ["content", "free"])
    assert s["content"]["runs"] == 2
    assert s["content"]["ndcg_at_10_mean"] == pytest.approx(0.52)
    assert s["free"]["ndcg_at_10_mean"] == pytest.approx(0.50)
    # sample standard deviation of (0.52, 0.48): 0.02 * sqrt(2)
    assert s["free"]["ndcg_at_10_sd"] == pytest.approx(0.0282843, rel=1e-5)
    assert s["gap_percent"]["ndcg_at_10"] == pytest.approx(4.0)
    assert s["gap_percent"]["rmse"] == pytest.approx(100 * (1.21 / 1.22 - 1))
    table = format_table(s, ["content", "free"])
    assert "| content | 2 | 0.5200 |" in table
    assert "NDCG@10 +4.00%" in table


def test_one_model_alone_has_no_gap_and_one_run_no_spread() -> None:
    s = summarise([_run("free", 0, 0.5, 1.2)], ["free"])
    assert "gap_percent" not in s
    assert s["free"]["ndcg_at_10_sd"] == 0.0
    assert "content vs" not in format_table(s, ["free"])
