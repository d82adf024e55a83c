"""The study's statistics on planted data and hand-checked cases (recurrent_mlm.study.stats)."""

import math
from itertools import permutations, product

import numpy as np
import pytest
from scipy import stats as sps

from recurrent_mlm.study import stats as S
from recurrent_mlm.study.planted import Design, error_rates, planted_pair


def test_describe_and_wilson_known_values():
    d = S.describe([1.0, 2.0, 3.0, 4.0])
    assert (d["n"], d["mean"], d["min"], d["median"], d["max"]) == (4, 2.5, 1.0, 2.5, 4.0)
    assert d["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    # Wilson 0/10: upper = z^2 / (n + z^2); 5/10: 0.5 +- the textbook half-width.
    low, high = S.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (10 + 1.959964**2), rel=1e-6)
    low, high = S.wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    lows, highs = S.wilson_interval(np.array([0, 3, 0]), np.array([10, 10, 0]))
    assert math.isnan(lows[2]) and math.isnan(highs[2]) and 0 < lows[1] < 0.3 < highs[1]
    with pytest.raises(ValueError, match="trivial predictor"):
        S.describe([0.5, float("nan")])


def test_variance_components_recover_planted_levels():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 2.0, (400, 1)) + rng.normal(0, 1.0, (400, 5))
    comp = S.variance_components(y)
    assert comp["pretrain"] == pytest.approx(4.0, rel=0.2)
    assert comp["finetune"] == pytest.approx(1.0, rel=0.1)


def test_item_metrics_match_reference_implementations():
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    predictions = np.where(rng.random((2, 2, 300)) < 0.6, labels, rng.integers(0, 3, (2, 2, 300)))
    bootstrap = S.hierarchical_bootstrap(
        S.TaskResults({"a": predictions, "b": predictions[::-1]}, labels=labels, metric="mcc"),
        n_resamples=100,
    )
    expected = np.mean([matthews_corrcoef(labels, predictions[p, f]) for p, f in product(range(2), range(2))])
    assert bootstrap.estimates[0, 0] == pytest.approx(expected, abs=1e-12)

    binary = labels % 2
    pred = (predictions % 2)[:1, :1]
    result = S.paired_item_bootstrap(pred[0, 0], 1 - binary, labels=binary, metric="f1", n_resamples=100)
    assert result.estimates["a"] == pytest.approx(f1_score(binary, pred[0, 0]), abs=1e-12)

    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    result = S.paired_item_bootstrap(x, y * 0.0 + 1.0, labels=y, metric="pearson", n_resamples=100)
    assert result.estimates["a"] == pytest.approx(sps.pearsonr(x, y)[0], abs=1e-12)
    assert result.estimates["b"] == 0.0  # a constant prediction has no correlation


def test_bootstrap_levels_have_the_plug_in_variances():
    """The vectorised multinomial draws are the two-stage resampling: check var* against its closed form."""
    rng = np.random.default_rng(2)
    n_pre, n_fine = 4, 3
    runs = rng.normal(size=(n_pre, n_fine))
    zeros = np.zeros_like(runs)
    boot = S.paired_seed_bootstrap(runs, zeros, n_resamples=40_000, seed=3)
    # var* = (1/P) [ mean_p (ybar_p - ybar)^2 + mean_p (1/F) mean_f (y_pf - ybar_p)^2 ]
    means = runs.mean(axis=1)
    expected = (np.mean((means - means.mean()) ** 2) + np.mean(runs.var(axis=1)) / n_fine) / n_pre
    assert boot.se**2 == pytest.approx(expected, rel=0.05)
    assert boot.estimate == pytest.approx(runs.mean())

    items = rng.normal(size=500)
    boot = S.paired_item_bootstrap(items, np.zeros(500), n_resamples=20_000, seed=4)
    assert boot.se**2 == pytest.approx(items.var() / 500, rel=0.05)

    fixed = S.paired_bootstrap(runs, zeros, resample=("finetune",), n_resamples=20_000, seed=5)
    assert fixed.se**2 == pytest.approx(np.mean(runs.var(axis=1)) / (n_fine * n_pre), rel=0.05)
    assert "pretrain (4, fixed)" in fixed.method


def test_bootstrap_is_seeded_and_paired():
    a, b = planted_pair(np.random.default_rng(6), Design(n_items=200), effect=0.1)
    one = S.paired_bootstrap(a, b, n_resamples=500, seed=11)
    two = S.paired_bootstrap(a, b, n_resamples=500, seed=11)
    np.testing.assert_array_equal(one.distribution, two.distribution)
    assert one.to_dict()["sizes"] == {"pretrain": 3, "finetune": 3, "items": 200}
    # Pairing: a shift shared by both models (same item, same seed) does not move the difference.
    shifted = S.paired_bootstrap(a + 5.0, b + 5.0, n_resamples=500, seed=11)
    np.testing.assert_allclose(shifted.distribution, one.distribution, atol=1e-9)


def test_identical_models_give_exactly_zero():
    a, _ = planted_pair(np.random.default_rng(7), Design(n_items=300))
    for b in (a.copy(), np.asfortranarray(a)):  # another memory layout may sum in another order
        result = S.paired_bootstrap(a, b, n_resamples=500)
        assert (result.estimate, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_p_value_matches_the_interval():
    rng = np.random.default_rng(8)
    for trial in range(30):
        a, b = planted_pair(rng, Design(n_pretrain=2, n_finetune=2, n_items=100), effect=rng.normal(0, 0.1))
        r = S.paired_bootstrap(a, b, n_resamples=400, seed=trial)
        assert (r.p_value < 0.05) == (r.low > 0 or r.high < 0)


def test_planted_nulls_rarely_come_out_significant():
    """200 planted nulls with realistic variance components: about 5% (two-sided) excluded zero."""
    rates = error_rates(Design(n_items=200), trials=200, n_resamples=600, seed=0)
    assert rates["above"] <= 0.05 and rates["below"] <= 0.05
    assert rates["above"] + rates["below"] <= 0.08
    binary = error_rates(Design(n_items=200), trials=200, n_resamples=600, seed=1, kind="binary")
    assert binary["above"] + binary["below"] <= 0.08


def test_interval_covers_a_planted_normal_effect():
    rates = error_rates(Design(n_items=200), effect=0.05, trials=200, n_resamples=600, seed=2)
    assert 0.89 <= rates["coverage"] <= 0.99


def test_multi_task_average_shares_seed_draws():
    rng = np.random.default_rng(9)
    t1 = S.TaskResults({"a": rng.random((3, 2, 50)), "b": rng.random((3, 2, 50))}, name="one")
    t2 = S.TaskResults({"a": rng.random((3, 2)), "b": rng.random((3, 2))}, name="two", weight=3.0)
    boot = S.hierarchical_bootstrap([t1, t2], n_resamples=300)
    mean = boot.difference("a", "b")
    parts = [boot.difference("a", "b", task=t) for t in ("one", "two")]
    assert mean.estimate == pytest.approx(0.25 * parts[0].estimate + 0.75 * parts[1].estimate)
    np.testing.assert_allclose(mean.distribution, 0.25 * parts[0].distribution + 0.75 * parts[1].distribution)
    assert "mean over 2 tasks" in mean.method
    with pytest.raises(ValueError, match="share the seeds design"):
        S.hierarchical_bootstrap(
            [t1, S.TaskResults({"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}, name="x")]
        )


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same .* shape"):
        S.paired_bootstrap(np.zeros((2, 2, 5)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="needs labels"):
        S.paired_bootstrap(np.zeros((1, 1, 5)), np.zeros((1, 1, 5)), metric="accuracy")
    with pytest.raises(ValueError, match="unknown item metric"):
        S.paired_bootstrap(np.zeros((1, 1, 5)), np.zeros((1, 1, 5)), metric="spearman")
    with pytest.raises(ValueError, match="trivial predictor"):
        S.paired_seed_bootstrap([0.5, np.nan], [0.5, 0.5])
    with pytest.raises(ValueError, match="integer seed"):
        S.paired_seed_bootstrap([0.5, 0.6], [0.5, 0.5], seed=None)


def test_mcnemar_exact_hand_checked():
    def pair(a_only, b_only, both=3, neither=2):
        a = [1] * a_only + [0] * b_only + [1] * both + [0] * neither
        b = [0] * a_only + [1] * b_only + [1] * both + [0] * neither
        return np.array(a), np.array(b)

    r = S.mcnemar_exact(*pair(10, 2))
    assert (r.a_only, r.b_only, r.n_discordant, r.n_items) == (10, 2, 12, 17)
    assert r.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 2 P(X <= 2), X ~ Bin(12, 1/2)
    assert S.mcnemar_exact(*pair(5, 0)).p_value == pytest.approx(2 / 32)
    assert S.mcnemar_exact(*pair(5, 0), alternative="greater").p_value == pytest.approx(1 / 32)
    assert S.mcnemar_exact(*pair(4, 4)).p_value == 1.0
    assert S.mcnemar_exact(*pair(0, 0)).p_value == 1.0


def test_sign_flip_exact_hand_checked():
    assert S.sign_flip_test([1, 2, 3]).p_value == pytest.approx(2 / 8)  # only +-(1+2+3) reach |6|
    r = S.sign_flip_test([1, 2, 3, 4, 5])
    assert r.exact and r.n_permutations == 32 and r.p_value == pytest.approx(2 / 32)
    assert S.sign_flip_test([1, 2, 3, 4, 5], alternative="greater").p_value == pytest.approx(1 / 32)
    assert S.sign_flip_test([1, 2, 3, 4, 5], alternative="less").p_value == pytest.approx(1.0)
    assert S.sign_flip_test([1.0, -1.0]).p_value == 1.0
    # Floating-point ties: flipping 0.3, -0.1, -0.2 (which sum to 0 only in exact arithmetic) keeps |sum|.
    assert (
        S.sign_flip_test([0.3, -0.1, -0.2, 0.5]).p_value
        == S.sign_flip_test([3, -1, -2, 5]).p_value
        == 10 / 16
    )
    d = np.random.default_rng(10).normal(0.3, 1.0, 17)
    exact = S.sign_flip_test(d, max_exact=17)
    monte_carlo = S.sign_flip_test(d, max_exact=16, n_resamples=40_000, seed=1)
    assert not monte_carlo.exact and monte_carlo.p_value == pytest.approx(exact.p_value, abs=0.01)


def test_holm_textbook_example():
    # Holm (1979) as in most textbooks: four tests at alpha = 0.05 reject H4 (0.005) and H1 (0.01) only.
    adjusted = S.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted < 0.05) == [True, False, False, True]
    np.testing.assert_allclose(S.holm([0.5, 0.9]), [1.0, 1.0])  # 2 x 0.5, then the running maximum


def test_trend_test_exact_and_planted():
    perfect = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    r = S.trend_test(perfect)
    assert r.p_increasing == pytest.approx(1 / 36) and r.rho == pytest.approx(1.0)
    assert r.p_value == pytest.approx(2 / 36)
    r = S.trend_test(
        {"T": [0.1, 0.2, 0.1], "ST": [0.3, 0.4, 0.2], "SUT": [0.5, 0.6, 0.3], "LSTM": [0.7, 0.9, 0.8]},
        order=("T", "ST", "SUT", "LSTM"),
    )
    assert r.p_increasing == pytest.approx(24.0**-3) and r.rho == 1.0
    # Every ranking of 3 models once: no trend at all.
    balanced = np.array([list(p) for p in permutations([1.0, 2.0, 3.0])])
    r = S.trend_test(balanced)
    assert r.rho == pytest.approx(0.0) and r.p_value == 1.0

    rng = np.random.default_rng(12)
    planted = np.arange(4) * 0.5 + rng.normal(0, 0.3, (6, 4))
    r = S.trend_test(planted)
    assert r.p_increasing < 0.001 and r.low > 0
    assert S.trend_test(planted[:, ::-1]).p_decreasing < 0.001
    shuffled_p = [
        S.trend_test(np.stack([rng.permutation(row) for row in planted])).p_value for _ in range(40)
    ]
    assert np.mean(np.array(shuffled_p) < 0.05) <= 0.15


def test_spread_scores_feed_a_variability_trend():
    rng = np.random.default_rng(13)
    scores = rng.normal(0, [0.01, 0.05, 0.1, 0.2], (8, 4))
    r = S.trend_test(S.spread_scores(scores))
    assert r.rho > 0 and r.p_increasing < 0.05


def test_calibration_hand_checked():
    probs = np.array([0.9, 0.9, 0.6, 0.6])
    labels = np.array([1, 0, 1, 1])
    # 0.9-bin: accuracy 1/2 vs confidence 0.9; 0.6-bin: accuracy 1 vs 0.6; each holds half the examples.
    assert S.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    two_column = np.stack([1 - probs, probs], axis=1)
    assert S.expected_calibration_error(two_column, labels, 10) == pytest.approx(0.4)
    assert S.brier_score([0.9, 0.2], [1, 0]) == pytest.approx((0.01 + 0.04) / 2)
    assert S.brier_score([[0.7, 0.2, 0.1]], [0]) == pytest.approx(0.09 + 0.04 + 0.01)
    assert math.isnan(S.expected_calibration_error([[np.nan, np.nan]], [0]))
    with pytest.raises(ValueError, match="softmax"):
        S.brier_score([[2.0, -1.0]], [0])


def test_ece_matches_the_glue_metric():
    from recurrent_mlm.glue.ece_metric import expected_calibration_error as glue_ece

    rng = np.random.default_rng(14)
    logits = rng.normal(size=(400, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, 400)
    assert S.expected_calibration_error(probs, labels) == pytest.approx(
        glue_ece(probs, labels)["ece"], abs=1e-12
    )


def test_divergence_definitions():
    ok = S.classify_divergence(score=0.8, trivial_score=0.5, losses=[0.7, 0.4], predictions=[0, 1, 1])
    assert not ok.collapsed and not ok.trivial and not ok.diverged
    nan_loss = S.classify_divergence(score=0.8, trivial_score=0.5, losses=[0.7, float("nan")])
    assert nan_loss.collapsed and not nan_loss.trivial and "non-finite" in nan_loss.reasons[0]
    constant = S.classify_divergence(score=0.5, trivial_score=0.5, predictions=[1, 1, 1])
    assert constant.collapsed and constant.trivial and constant.diverged
    # Constant predictions of a minority class: collapsed and below the trivial predictor.
    assert S.classify_divergence(score=0.3, trivial_score=0.5, predictions=[0, 0]).to_dict()["diverged"]
    trivial = S.classify_divergence(score=0.5000000001, trivial_score=0.5, predictions=[0, 1])
    assert trivial.trivial and not trivial.collapsed
    undefined = S.classify_divergence(score=float("nan"), trivial_score=0.0)
    assert undefined.collapsed and undefined.trivial
    lower = S.classify_divergence(score=5.0, trivial_score=4.0, higher_is_better=False)
    assert lower.trivial
    rate = S.failure_rate([True, False, False, False])
    assert rate["failed"] == 1 and rate["rate"] == 0.25 and rate["low"] < 0.25 < rate["high"]
