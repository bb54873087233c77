"""The importance-sampling estimator (zoo.evaluation.importance) against exact answers on a tiny
latent-variable model whose 2^m latent states can be enumerated."""
import numpy as np
import pytest

from zoo import evaluation
from zoo.evaluation import importance


@pytest.fixture
def toy(toy_latent_class):
    return toy_latent_class(n_visible=6, n_latent=3, scale=1.5, seed=1)


@pytest.fixture
def x(toy):
    return (np.random.default_rng(0).random((40, toy.n_visible)) < 0.5).astype("float32")


def test_converges_to_the_exact_log_likelihood(toy, x):
    exact = toy.exact_log_prob(x)
    result = importance.log_likelihood(toy, x, k=20000, batch_size=16, seed=3)
    assert result.kind == "stochastic lower bound" and result.k == 20000
    # each example within 5 of its own delta-method standard errors, and the mean within 5 of its error
    assert np.all(np.abs(result.per_example - exact) < 5 * result.per_example_std + 1e-6)
    assert abs(result.log_likelihood - exact.mean()) < 5 * np.sqrt(np.mean(result.per_example_std ** 2) / len(x)) + 1e-6
    assert result.nll == pytest.approx(-result.log_likelihood)
    assert 1 < result.ess <= 20000


def test_one_sample_averages_to_the_elbo_below_the_truth(toy, x):
    """E[log w] with one sample is the ELBO: Jensen's gap makes K = 1 a lower bound, K > 1 tighter."""
    example = np.repeat(x[:1], 4000, axis=0)
    elbo, exact = toy.exact_elbo(x[:1])[0], toy.exact_log_prob(x[:1])[0]
    assert elbo < exact - 0.05  # a model where the bound is loose, so the test can tell them apart
    one = importance.log_likelihood(toy, example, k=1, batch_size=1000, seed=0)
    assert abs(one.log_likelihood - elbo) < 4 * one.std
    assert np.all(np.isinf(one.per_example_std))  # no spread to measure within one sample
    many = importance.log_likelihood(toy, example[:200], k=1000, seed=0)
    assert one.log_likelihood < many.log_likelihood <= exact + 4 * many.std


def test_the_exact_posterior_makes_every_weight_equal(toy_latent_class):
    """With one latent bit, q(h | x) can be the exact posterior (its logit is affine in x): then every
    log weight equals log p(x), at any K, with ESS = K and no error."""
    model = toy_latent_class(n_visible=5, n_latent=1, scale=1.0, seed=2)
    W, b, a = model.W.numpy()[0], model.b.numpy(), model.a.numpy()[0]
    softplus = np.logaddexp(0, W + b) - np.logaddexp(0, b)
    model.U.assign(W[:, None])
    model.c.assign([a - softplus.sum()])
    x = (np.random.default_rng(1).random((30, 5)) < 0.5).astype("float32")
    for k in (1, 7):
        result = importance.log_likelihood(model, x, k=k, seed=0)
        np.testing.assert_allclose(result.per_example, model.exact_log_prob(x), atol=1e-5)
        assert result.ess == pytest.approx(k)
    np.testing.assert_allclose(result.per_example_std, 0.0, atol=1e-3)


@pytest.mark.parametrize("chunks", [(5,), (1, 1, 1, 1, 1), (2, 3), (4, 1)])
def test_streaming_matches_one_logsumexp(chunks):
    log_w = np.random.default_rng(0).normal(scale=30.0, size=(7, 5))
    stream, start = importance.LogMeanExp(), 0
    for size in chunks:
        stream.update(log_w[:, start:start + size])
        start += size
    np.testing.assert_allclose(stream.log_mean(), np.logaddexp.reduce(log_w, axis=1) - np.log(5), rtol=1e-13)
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    np.testing.assert_allclose(stream.ess(), w.sum(1) ** 2 / (w ** 2).sum(1), rtol=1e-10)


def test_chunked_sampling_is_reproducible_and_fits_any_chunk(toy, x):
    first = importance.log_likelihood(toy, x, k=50, chunk_size=7, seed=4)
    again = importance.log_likelihood(toy, x, k=50, chunk_size=7, seed=4)
    np.testing.assert_array_equal(first.per_example, again.per_example)
    other = importance.log_likelihood(toy, x, k=50, chunk_size=50, seed=4)
    assert not np.array_equal(first.per_example, other.per_example)  # other draws, the same quantity
    assert first.settings["chunk_size"] == 7 and other.settings["chunk_size"] == 50


def test_evaluate_dispatches_on_capabilities(toy, x, toy_latent_class):
    result = evaluation.evaluate(toy, {"test": x}, ks=(1, 10), seed=0)
    assert isinstance(result, importance.ImportanceEvaluation) and result.kind == "stochastic lower bound"
    assert [r["k"] for r in result.results] == [1, 10]
    assert result.results[1]["nll"] <= result.results[0]["nll"] + 0.5
    assert result.to_dict()["results"][0]["kind"] == "stochastic lower bound"


def test_bad_input(toy, x):
    from zoo.models import RBM
    with pytest.raises(ValueError, match="RBM cannot give an importance-sampled log-likelihood.*offers"):
        importance.log_likelihood(RBM(4, n_visible=6), x)
    with pytest.raises(ValueError, match="values in"):
        importance.log_likelihood(toy, x * 3)
    with pytest.raises(ValueError, match="6 columns"):
        importance.log_likelihood(toy, x[:, :4])
    with pytest.raises(ValueError, match="k must be"):
        importance.log_likelihood(toy, x, k=0)
    with pytest.raises(ValueError, match="at least one"):
        evaluation.evaluate_latent_variable_model(toy, {"test": x}, ks=())
    with pytest.raises(ValueError, match="'test'"):
        evaluation.evaluate_latent_variable_model(toy, {"train": x})


def test_an_interrupted_estimate_resumes_to_the_same_numbers(toy, x, tmp_path):
    progress = tmp_path / "progress" / "k50.npz"
    whole = importance.log_likelihoods(toy, x, k=50, batch_size=4, chunk_size=20, seed=3, powers=(1, 2))
    calls = {"n": 0}
    original = type(toy).log_importance_weights

    def failing(self, batch, k, seed):
        calls["n"] += 1
        if calls["n"] > 7:  # the third batch's first chunk: two batches are finished
            raise KeyboardInterrupt
        return original(self, batch, k, seed)

    type(toy).log_importance_weights = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            importance.log_likelihoods(toy, x, k=50, batch_size=4, chunk_size=20, seed=3, powers=(1, 2),
                                       progress_file=progress)
    finally:
        type(toy).log_importance_weights = original
    assert progress.is_file()
    with pytest.raises(ValueError, match="other settings or data"):
        importance.log_likelihoods(toy, x, k=50, batch_size=4, chunk_size=20, seed=4, progress_file=progress)
    calls["n"] = 0
    resumed = importance.log_likelihoods(toy, x, k=50, batch_size=4, chunk_size=20, seed=3, powers=(1, 2),
                                         progress_file=progress)
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a.per_example, b.per_example)
        assert a.ess == b.ess
    assert not progress.exists() and not progress.parent.exists()  # done: the file and its folder go
    progress.parent.mkdir()
    progress.write_bytes(b"not a progress file")
    with pytest.raises(ValueError, match="cannot read the progress file"):
        importance.log_likelihoods(toy, x, k=50, batch_size=4, chunk_size=20, seed=3, progress_file=progress)
