"""CaptioningRNN: gradients, greedy and beam decoding, save/load, overfitting, and
caption quality on the built-in synthetic set."""
import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN, beam_search, load_captioner, save_captioner, sequence_log_prob
from gradscope.data.synthetic import synthetic_captions
from gradscope.data.vocab import decode_tokens
from gradscope.errors import DataError, GradscopeError, ShapeError
from gradscope.gradcheck import eval_numerical_gradient, rel_error
from gradscope.metrics import bleu
from gradscope.training import ArrayDataset, Trainer

VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "on", "mat"]
W2I = {w: i for i, w in enumerate(VOCAB)}
NULL, START, END = 0, 1, 2


def tiny_model(cell, dtype=np.float64, seed=0, scale=1.0, vocab=W2I):
    """A small model with all parameters random (biases too), so every path carries gradient."""
    model = CaptioningRNN(vocab, input_dim=6, wordvec_dim=5, hidden_dim=4, cell_type=cell, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for k, v in model.params.items():
        model.params[k] = (scale * rng.standard_normal(v.shape)).astype(dtype)
    return model


def tiny_batch(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((3, 6)).astype(dtype)
    captions = np.array([[START, 4, 5, 7, 4, 8, END],
                         [START, 6, END, NULL, NULL, NULL, NULL],  # <NULL> targets are masked out
                         [START, 4, 4, 3, END, NULL, NULL]], dtype=np.int32)
    return features, captions


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_loss_gradients_match_numeric(cell):
    model = tiny_model(cell)
    features, captions = tiny_batch()
    loss, grads = model.loss(features, captions)
    assert set(grads) == set(model.params)
    for name, param in model.params.items():
        numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], param, verbose=False, h=1e-5)
        assert grads[name].shape == param.shape
        # elementwise relative error, with an absolute floor for entries near zero
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_float32_follows_dtype_and_matches_float64(cell):
    m64, m32 = tiny_model(cell), tiny_model(cell, dtype=np.float32)
    features, captions = tiny_batch()
    loss64, grads64 = m64.loss(features, captions)
    loss32, grads32 = m32.loss(features, captions)
    assert all(g.dtype == np.float32 for g in grads32.values())
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for k in grads64:
        assert rel_error(grads32[k].astype(np.float64), grads64[k]) < 1e-3, k


def test_param_shapes_follow_the_course():
    rnn = CaptioningRNN(W2I, input_dim=10, wordvec_dim=7, hidden_dim=5, cell_type="rnn")
    lstm = CaptioningRNN(W2I, input_dim=10, wordvec_dim=7, hidden_dim=5, cell_type="lstm")
    V = len(VOCAB)
    expected = {"W_proj": (10, 5), "b_proj": (5,), "W_embed": (V, 7), "Wx": (7, 5), "Wh": (5, 5), "b": (5,),
                "W_vocab": (5, V), "b_vocab": (V,)}
    assert {k: v.shape for k, v in rnn.params.items()} == expected
    assert lstm.params["Wx"].shape == (7, 20) and lstm.params["Wh"].shape == (5, 20)
    assert all(v.dtype == np.float32 for v in lstm.params.values())


def test_bad_inputs_are_clear_errors():
    model = tiny_model("lstm")
    features, captions = tiny_batch()
    with pytest.raises(ShapeError, match=r"features must have shape \(N, 6\)"):
        model.loss(features[:, :4], captions)
    with pytest.raises(ShapeError, match="3 images but captions hold 2"):
        model.loss(features, captions[:2])
    bad = captions.copy()
    bad[0, 2] = 99
    with pytest.raises(GradscopeError, match="word id 99, outside the vocabulary"):
        model.loss(features, bad)
    with pytest.raises(GradscopeError, match="integer word ids"):
        model.loss(features, captions.astype(float))
    with pytest.raises(GradscopeError, match="NaN"):
        model.sample(np.full((1, 6), np.nan))
    with pytest.raises(GradscopeError, match="cell_type"):
        CaptioningRNN(W2I, cell_type="gru")
    with pytest.raises(GradscopeError, match="no <NULL>"):
        CaptioningRNN({"<START>": 0, "<END>": 1})


def test_course_vocabulary_trains_and_decoding_names_the_missing_token():
    """The course's check vocabulary {'<NULL>': 0, 'cat': 2, 'dog': 3}: V = 3, no <START>/<END>."""
    course = {"<NULL>": 0, "cat": 2, "dog": 3}
    model = CaptioningRNN(course, input_dim=6, wordvec_dim=5, hidden_dim=4, dtype=np.float64)
    assert model.vocab_size == 3 and model.params["W_embed"].shape == (3, 5)
    features = np.random.default_rng(0).standard_normal((2, 6))
    captions = np.array([[1, 2, 0], [2, 1, 2]])
    loss, grads = model.loss(features, captions)
    numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params["Wx"], verbose=False)
    assert np.isfinite(loss) and rel_error(grads["Wx"], numeric) < 1e-7
    with pytest.raises(GradscopeError, match="decoding needs <START>"):
        model.sample(features)
    with pytest.raises(GradscopeError, match="decoding needs <START>"):
        beam_search(model, features)
    no_end = CaptioningRNN({"<NULL>": 0, "<START>": 1, "a": 2}, input_dim=6, wordvec_dim=5, hidden_dim=4)
    assert (no_end.sample(features, max_length=4) == 2).all()  # runs to max_length: only "a" can be emitted


def one_caption_per_image(split, n):
    """n (features, caption) pairs from n different images (the caption template cycles)."""
    rows = np.arange(n) * 5 + np.arange(n) % 5
    return ArrayDataset(*split.batch(rows))


@pytest.fixture(scope="module", params=["rnn", "lstm"])
def overfit(request):
    """(model, data, TrainResult): a small model trained on 50 synthetic captions of 50 images."""
    data = synthetic_captions(n_train=50, n_val=0, seed=1)["train"]
    small = one_caption_per_image(data, 50)
    model = CaptioningRNN(data.word_to_idx, input_dim=data.feature_dim, wordvec_dim=64, hidden_dim=128,
                          cell_type=request.param, seed=0)
    result = Trainer(model, small, optim_config={"learning_rate": 5e-3}, batch_size=25, num_epochs=50,
                     seed=0, progress=False).train()
    return model, data, result


def test_overfits_a_small_set(overfit):
    model, _, result = overfit
    assert result.loss_history[0] > 30  # about 17 words at log(27) each
    assert result.loss_history[-1] < 0.05 * result.loss_history[0]


def test_sample_pads_with_null_after_end(overfit):
    model, data, _ = overfit
    captions = model.sample(data.image_features(np.arange(50)), max_length=12)
    assert captions.shape == (50, 12) and captions.dtype == np.int32
    lengths = []
    for row in captions:
        ends = np.flatnonzero(row == END)
        body = row if not len(ends) else row[:ends[0]]
        assert not np.isin(body, [NULL, START]).any()  # padding and <START> are never generated
        if len(ends):
            lengths.append(ends[0])
            assert (row[ends[0] + 1:] == NULL).all()
    assert 0 < len(lengths) < 50 and len(set(lengths)) > 2  # ended and cut-off rows, varied lengths


def test_sample_never_emits_null_or_start_and_stops_early():
    model = tiny_model("rnn")
    model.params["b_vocab"][[NULL, START]] = 100.0  # the most likely words, yet forbidden
    captions = model.sample(np.ones((2, 6)), max_length=5)
    assert not np.isin(captions, [NULL, START]).any()
    model.params["b_vocab"][END] = 1000.0
    np.testing.assert_array_equal(model.sample(np.ones((2, 6)), max_length=5), [[END, 0, 0, 0, 0]] * 2)


@pytest.mark.parametrize("cell,dtype", [("rnn", np.float64), ("lstm", np.float64), ("lstm", np.float32)])
def test_beam_of_one_is_greedy(cell, dtype):
    model = tiny_model(cell, dtype=dtype, scale=2.0)
    features = np.random.default_rng(2).standard_normal((30, 6))
    captions, scores = beam_search(model, features, beam_size=1, max_length=10)
    np.testing.assert_array_equal(captions, model.sample(features, max_length=10))
    np.testing.assert_allclose(scores, sequence_log_prob(model, features, captions), rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_beam_scores_are_the_log_probs_of_its_captions(cell):
    model = tiny_model(cell, scale=2.0)
    features = np.random.default_rng(3).standard_normal((10, 6))
    for alpha in (False, True, 0.7):
        captions, scores = beam_search(model, features, beam_size=4, max_length=8, length_normalization=alpha)
        np.testing.assert_allclose(scores, sequence_log_prob(model, features, captions), rtol=1e-10)
        for row in captions:
            ends = np.flatnonzero(row == END)
            if len(ends):
                assert (row[ends[0] + 1:] == NULL).all()


def test_beam_search_is_at_least_as_likely_as_greedy(overfit):
    """Per image this is not a theorem (a beam can lose the greedy path); on the trained
    model it holds for every image, on random models overall and for nearly all images.
    Both captions are scored by one computation (sequence_log_prob): the beam's own scores
    come from (N*k)-row float32 products, whose rounding differs from the N-row ones by ~1e-7,
    so the same caption would otherwise compare unequal."""
    model, data, _ = overfit
    features = data.image_features(np.arange(50))
    greedy = sequence_log_prob(model, features, model.sample(features, max_length=20))
    captions, beam_scores = beam_search(model, features, beam_size=3, max_length=20, length_normalization=False)
    beam = sequence_log_prob(model, features, captions)
    np.testing.assert_allclose(beam_scores, beam, atol=1e-5)  # float32 model: rounding only
    assert (beam >= greedy).all()
    wins = total = 0
    for seed in range(4):
        for cell in ("rnn", "lstm"):
            model = tiny_model(cell, seed=seed, scale=2.0)
            features = np.random.default_rng(seed).standard_normal((25, 6))
            greedy = sequence_log_prob(model, features, model.sample(features, max_length=10))
            _, beam = beam_search(model, features, beam_size=5, max_length=10, length_normalization=False)
            assert beam.sum() >= greedy.sum()
            wins += (beam >= greedy - 1e-9).sum()
            total += len(beam)
    assert wins / total > 0.95


def test_beam_search_edge_cases_never_crash():
    model = tiny_model("lstm")
    features = np.random.default_rng(4).standard_normal((3, 6))
    captions, scores = beam_search(model, features, beam_size=50, max_length=6)  # k > vocabulary
    assert captions.shape == (3, 6) and np.isfinite(scores).all()
    captions, scores = beam_search(model, np.zeros((0, 6)), beam_size=3)  # no images
    assert captions.shape == (0, 30) and scores.shape == (0,)
    captions, _ = beam_search(model, features, beam_size=3, max_length=1)
    assert captions.shape == (3, 1) and not np.isin(captions, [NULL, START]).any()
    model.params["b_vocab"][END] = 1000.0  # every beam finishes at the first step
    captions, scores = beam_search(model, features, beam_size=4, max_length=5)
    np.testing.assert_array_equal(captions, [[END, 0, 0, 0, 0]] * 3)
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)
    only_end = {"<NULL>": 0, "<START>": 1, "<END>": 2}  # nothing but <END> can be generated
    captions, scores = beam_search(tiny_model("rnn", vocab=only_end), features, beam_size=3, max_length=4)
    np.testing.assert_array_equal(captions, [[END, 0, 0, 0]] * 3)
    assert np.isfinite(scores).all() and (scores < 0).all()
    with pytest.raises(GradscopeError, match="beam_size"):
        beam_search(model, features, beam_size=0)
    with pytest.raises(GradscopeError, match="length_normalization"):
        beam_search(model, features, length_normalization=-1.0)


def test_length_normalization_prefers_longer_captions():
    model = tiny_model("lstm", scale=2.0)
    features = np.random.default_rng(5).standard_normal((40, 6))
    raw, _ = beam_search(model, features, beam_size=5, max_length=10, length_normalization=False)
    norm, _ = beam_search(model, features, beam_size=5, max_length=10, length_normalization=True)
    length = lambda c: (c != NULL).sum()  # noqa: E731
    assert length(norm) >= length(raw)


def test_save_load_round_trip(tmp_path, overfit):
    model, data, _ = overfit
    model.info = {"data": "unit-test"}
    path = tmp_path / "captioner.npz"
    save_captioner(path, model, extra_meta={"epochs": 3})
    loaded = load_captioner(path)
    assert (loaded.cell_type, loaded.hidden_dim, loaded.idx_to_word) == (model.cell_type, 128, data.idx_to_word)
    assert loaded.info == {"data": "unit-test", "epochs": 3}
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    features = data.image_features(np.arange(50))
    np.testing.assert_array_equal(loaded.sample(features), model.sample(features))
    np.testing.assert_array_equal(beam_search(loaded, features)[0], beam_search(model, features)[0])
    assert len(set(map(tuple, loaded.sample(features)))) > 10  # real, varied captions
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captioner.npz"]


def test_save_float16_halves_the_file_and_loads_as_float32(tmp_path):
    model = tiny_model("lstm", dtype=np.float32)
    save_captioner(tmp_path / "half.npz", model, float16=True)
    loaded = load_captioner(tmp_path / "half.npz")
    assert all(v.dtype == np.float32 for v in loaded.params.values())
    for k, v in model.params.items():
        np.testing.assert_allclose(loaded.params[k], v, rtol=1e-3, atol=1e-4)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_captioner(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="not a gradscope captioner"):
        load_captioner(tmp_path / "other.npz")



@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_loss_and_gradients_match_torch(cell):
    torch = pytest.importorskip("torch")
    from gradscope.captioning.torch_twin import build_torch_captioner, torch_caption_loss

    model = tiny_model(cell)
    features, captions = tiny_batch()
    loss, grads = model.loss(features, captions)
    net = build_torch_captioner(model)
    t_loss = torch_caption_loss(net, torch.tensor(features), torch.tensor(captions, dtype=torch.long))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(grads["W_vocab"], net.vocab.weight.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["W_embed"], net.embed.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["W_proj"], net.proj.weight.grad.numpy().T, rtol=1e-9, atol=1e-12)
    perm = _gate_perm(cell, model.hidden_dim)
    np.testing.assert_allclose(grads["b"], net.rnn.bias_ih_l0.grad.numpy()[perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["Wx"], net.rnn.weight_ih_l0.grad.numpy().T[:, perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["Wh"], net.rnn.weight_hh_l0.grad.numpy().T[:, perm], rtol=1e-9, atol=1e-12)


def _gate_perm(cell, H):
    """Indices taking torch's (i, f, g, o) gate rows to gradscope's (i, f, o, g)."""
    if cell == "rnn":
        return np.arange(H)
    return np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])


@pytest.mark.slow  # about 10-20 s on one core: the only long test here, run by default
def test_trained_lstm_captions_held_out_synthetic_images():
    data = synthetic_captions(n_train=1000, n_val=100, seed=0)
    train, val = data["train"], data["val"]
    model = CaptioningRNN(train.word_to_idx, input_dim=train.feature_dim, wordvec_dim=96, hidden_dim=192,
                          cell_type="lstm", seed=0)
    Trainer(model, train, optim_config={"learning_rate": 3e-3}, lr_decay=0.9, batch_size=25, num_epochs=6,
            clip_norm=5.0, seed=0, progress=False).train()
    ids = val.image_indices()
    features, refs = val.image_features(ids), val.references(ids)
    greedy = decode_tokens(model.sample(features, max_length=20), val.idx_to_word)
    assert bleu(refs, greedy)[3] > 0.9
    beam = decode_tokens(beam_search(model, features, beam_size=3, max_length=20)[0], val.idx_to_word)
    assert bleu(refs, beam)[3] > 0.9
