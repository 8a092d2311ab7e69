import numpy as np
import pytest

from geoconvnet.report.analysis import calibration_bins, cluster_order, embed, top_confused_pairs

NAMES = ["Norway", "Finland", "Serbia", "Greece"]
# Norway/Finland confuse each other, Serbia/Greece too.
MATRIX = np.array([[22, 3, 0, 0],
                   [2, 18, 0, 0],
                   [0, 0, 8, 2],
                   [0, 1, 1, 8]], dtype=float)


def test_confused_pairs_ranked_by_share_of_the_true_country():
    pairs = top_confused_pairs(MATRIX, NAMES, k=3)
    # Serbia -> Greece 2/10 = 20%, Norway -> Finland 3/25 = 12%, Finland -> Norway 2/20 = 10%
    # ties with Greece -> Finland 1/10 and Greece -> Serbia 1/10 broken by count, then name.
    assert [(p["truth"], p["predicted"]) for p in pairs] == \
        [("Serbia", "Greece"), ("Norway", "Finland"), ("Finland", "Norway")]
    assert pairs[0]["share"] == pytest.approx(0.2) and pairs[1]["share"] == pytest.approx(0.12)
    assert pairs[1]["count"] == 3


def test_ece_hand_computed():
    confidence = np.array([0.95, 0.95, 0.55, 0.55, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1, 1, 0], dtype=float)
    ece, bins = calibration_bins(confidence, correct, n_bins=10)
    # bin (0.9, 1]: acc 0.5, conf 0.95 -> gap 0.45 on 2/6; bin (0.5, 0.6]: acc 0.75, conf 0.55
    # -> gap 0.2 on 4/6. ECE = 0.45/3 + 0.2*2/3 = 0.2833...
    assert ece == pytest.approx(0.45 * 2 / 6 + 0.2 * 4 / 6)
    assert sum(b["count"] for b in bins) == 6 and bins[9]["accuracy"] == 0.5


def test_perfect_calibration_has_zero_ece():
    ece, _ = calibration_bins(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0]))
    assert ece == pytest.approx(0.0)


def test_cluster_order_puts_confused_countries_together():
    order = cluster_order(MATRIX)
    position = {NAMES[i]: p for p, i in enumerate(order)}
    assert abs(position["Norway"] - position["Finland"]) == 1
    assert abs(position["Serbia"] - position["Greece"]) == 1
    assert sorted(order) == [0, 1, 2, 3]
    assert cluster_order(np.eye(2)) == [0, 1]  # two countries: nothing to cluster


@pytest.mark.parametrize("method", ["tsne", pytest.param("umap", marks=pytest.mark.slow)])
@pytest.mark.parametrize("metric", ["raw", "cosine"])
def test_embeddings_give_one_point_per_country(method, metric):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (12, 12)) + np.eye(12) * 30
    points = embed(matrix, method, metric)
    assert points.shape == (12, 2) and np.isfinite(points).all()
    assert embed(MATRIX[:3, :3], method, metric) is None  # too few countries for a map
