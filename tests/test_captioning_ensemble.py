"""CaptionerEnsemble: the log-mixture layer's gradients, the ensemble's forward/backward against
numerical gradients, decoding equal to the mean of the members' distributions, and a one-member
ensemble equal to its member."""
import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN, beam_search, load_captioners, save_captioner
from gradscope.captioning.ensemble import CaptionerEnsemble, log_mixture, log_mixture_backward
from gradscope.errors import GradscopeError
from gradscope.gradcheck import check_layer_gradients, eval_numerical_gradient_array

VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "on", "mat"]
W2I = {w: i for i, w in enumerate(VOCAB)}
START = 1


def member(cell, seed, dtype=np.float64):
    model = CaptioningRNN(W2I, input_dim=6, wordvec_dim=5, hidden_dim=4, attention_dim=3, cell_type=cell,
                          dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for k, v in model.params.items():
        model.params[k] = rng.standard_normal(v.shape).astype(dtype)
    return model


def features_for(cell, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 6) if cell == "attention" else (n, 6))


def test_log_mixture_gradients():
    rng = np.random.default_rng(0)
    inputs = {f"s{k}": rng.standard_normal((2, 3, 5)) for k in range(3)}

    def forward(**s):
        return log_mixture(list(s.values()))

    def backward(dout, cache):
        return tuple(log_mixture_backward(dout, cache))

    errors = check_layer_gradients(forward, backward, inputs)
    assert max(errors.values()) < 1e-8, errors


def test_log_mixture_is_the_log_of_the_mean_distribution():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 7)) * 3
    out, _ = log_mixture([a, b])
    p = lambda s: np.exp(s) / np.exp(s).sum(-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.exp(out), (p(a) + p(b)) / 2, rtol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0)


@pytest.mark.parametrize("cell", ["lstm", "attention"])
def test_forward_backward_match_numeric(cell):
    ens = CaptionerEnsemble([member(cell, 0), member(cell, 1)])
    features = features_for(cell)
    words = np.array([[START, 4, 5, 7], [START, 6, 2, 0]])
    scores, cache = ens.forward(features, words)
    dscores = np.random.default_rng(2).standard_normal(scores.shape)
    dextras = {"alpha": np.random.default_rng(3).standard_normal(cache.extras["alpha"].shape)} \
        if cell == "attention" else None
    grads, dfeatures = ens.backward(dscores, cache, dextras)

    def objective(_):
        s, c = ens.forward(features, words)
        total = np.sum(s * dscores)
        return total + (np.sum(c.extras["alpha"] * dextras["alpha"]) if dextras else 0.0)

    params = ens.params
    assert set(grads) == set(params) and all(k.split("/")[0] in ("0", "1") for k in params)
    for name, value in params.items():
        numeric = eval_numerical_gradient_array(lambda _: np.array([objective(None)]), value, np.ones(1))
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    numeric = eval_numerical_gradient_array(lambda _: np.array([objective(None)]), features, np.ones(1))
    np.testing.assert_allclose(dfeatures, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cell", ["lstm", "attention"])
def test_steps_equal_the_teacher_forced_mixture(cell):
    """Decoding step by step gives the same log-probabilities as the full-sequence forward."""
    ens = CaptionerEnsemble([member(cell, 3), member(cell, 4), member(cell, 5)])
    features = features_for(cell, 3, seed=1)
    words = np.array([[START, 4, 5], [START, 6, 8], [START, 7, 7]])
    full, _ = ens.forward(features, words)
    state = ens.initial_state(features)
    for t in range(words.shape[1]):
        logp, state = ens.step(words[:, t], state)
        np.testing.assert_allclose(logp, full[:, t], rtol=1e-10, atol=1e-12)


def test_one_member_decodes_as_its_member():
    model = member("attention", 7)
    ens = CaptionerEnsemble([model])
    features = features_for("attention", 4, seed=2)
    np.testing.assert_array_equal(ens.sample(features, 8), model.sample(features, 8))
    a, sa = beam_search(ens, features, beam_size=3, max_length=8)
    b, sb = beam_search(model, features, beam_size=3, max_length=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-10)


def test_beam_search_runs_on_the_mixture():
    ens = CaptionerEnsemble([member("attention", 1), member("attention", 2)])
    features = features_for("attention", 3, seed=3)
    captions, scores = beam_search(ens, features, beam_size=4, max_length=6, length_normalization=0.5)
    assert captions.shape == (3, 6) and np.isfinite(scores).all()
    greedy, _ = beam_search(ens, features, beam_size=1, max_length=6)
    np.testing.assert_array_equal(greedy, ens.sample(features, 6))


def test_members_must_agree(tmp_path):
    other = dict(W2I, horse=9)
    with pytest.raises(GradscopeError, match="vocabulary"):
        CaptionerEnsemble([member("lstm", 0), CaptioningRNN(other, input_dim=6, wordvec_dim=5, hidden_dim=4,
                                                            cell_type="lstm", dtype=np.float64)])
    with pytest.raises(GradscopeError, match="region attention"):
        CaptionerEnsemble([member("lstm", 0), member("attention", 1)])
    with pytest.raises(GradscopeError, match="at least one"):
        CaptionerEnsemble([])


def test_load_captioners_gives_an_ensemble_for_several_files(tmp_path):
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"m{k}.npz"))
        save_captioner(paths[-1], member("attention", k))
    one = load_captioners(paths[:1])
    assert isinstance(one, CaptioningRNN)
    both = load_captioners(paths)
    assert isinstance(both, CaptionerEnsemble) and len(both.members) == 2
    assert both.info["members"] == 2


def test_saving_an_ensemble_asks_for_its_members(tmp_path):
    with pytest.raises(GradscopeError, match="members one file each"):
        save_captioner(tmp_path / "e.npz", CaptionerEnsemble([member("lstm", 0), member("lstm", 1)]))
