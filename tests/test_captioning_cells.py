"""The captioner family: every cell of gradscope.captioning.cells.CELL_TYPES through the one
CaptioningRNN (gradient checks of every parameter and of the features, torch parity, decoding,
save/load), the attention penalty, and training on region features."""
import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN, beam_search, load_captioner, save_captioner, sequence_log_prob
from gradscope.captioning.cells import CELL_TYPES
from gradscope.captioning.model import attention_penalty
from gradscope.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

W2I = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "a", "b", "c", "d"])}
CELLS = list(CELL_TYPES)


def tiny(cell, dtype=np.float64, **kw):
    model = CaptioningRNN(W2I, input_dim=5, wordvec_dim=4, hidden_dim=3, attention_dim=4, cell_type=cell,
                          dtype=dtype, seed=1, **kw)
    rng = np.random.default_rng(0)
    for k, v in model.params.items():  # larger, non-zero weights: gradients well above rounding noise
        model.params[k] = np.asarray(v + 0.4 * rng.standard_normal(v.shape)).astype(dtype)
    return model


def features(cell, n=2, seed=3):
    shape = (n, 6, 5) if CELL_TYPES[cell].spatial else (n, 5)
    return np.random.default_rng(seed).standard_normal(shape)


def _error(num, ana):
    """Largest difference relative to the largest value (elementwise relative errors blow up at
    entries near 0 that central differences resolve only to ~1e-10)."""
    return float(np.abs(num - ana).max() / max(np.abs(num).max(), 1e-12))


CAPTIONS = np.array([[1, 3, 4, 5, 2, 0], [1, 6, 2, 0, 0, 0]])


@pytest.mark.parametrize("cell", CELLS)
def test_loss_gradients_of_every_parameter(cell):
    model = tiny(cell, attention_reg=0.7, dropout=0.3)
    f = features(cell)
    loss, grads = model.loss(f, CAPTIONS, seed=5)  # a fixed dropout mask
    assert set(grads) == set(model.params)
    for name, value in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(f, CAPTIONS, seed=5)[0], value, verbose=False)
        assert _error(num, grads[name]) < 1e-7, name


@pytest.mark.parametrize("cell", CELLS)
def test_forward_backward_gradients_of_the_features(cell):
    model = tiny(cell)
    f = features(cell)
    scores, cache = model.forward(f, CAPTIONS[:, :-1])
    dscores = np.random.default_rng(4).standard_normal(scores.shape)
    grads, dfeatures = model.backward(dscores, cache)
    num = eval_numerical_gradient_array(lambda x: model.forward(x, CAPTIONS[:, :-1])[0], f, dscores)
    assert dfeatures.shape == f.shape and rel_error(num, dfeatures) < 1e-7


def test_attention_penalty_and_its_gradient():
    rng = np.random.default_rng(0)
    alpha = rng.random((2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    penalty, dalpha = attention_penalty(alpha, mask, 0.5)
    gap = 1 - (alpha * mask[:, :, None]).sum(axis=1)
    assert penalty == pytest.approx(0.5 * (gap ** 2).sum() / 2)
    num = eval_numerical_gradient(lambda a: attention_penalty(a, mask, 0.5)[0], alpha, verbose=False)
    assert rel_error(num, dalpha) < 1e-8 and (dalpha[~mask] == 0).all()


@pytest.mark.parametrize("cell", CELLS)
def test_loss_and_gradients_match_the_torch_twin(cell):
    torch = pytest.importorskip("torch")
    from gradscope.captioning.torch_twin import build_torch_captioner, torch_caption_loss

    model = tiny(cell, attention_reg=0.7)
    f = features(cell)
    loss, grads = model.loss(f, CAPTIONS)
    net = build_torch_captioner(model)
    t_loss = torch_caption_loss(net, torch.tensor(f), torch.tensor(CAPTIONS))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    theirs = net.grads()
    assert set(theirs) == set(grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], theirs[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_decoding_every_cell(cell):
    model = tiny(cell)
    model.params["b_vocab"][2] -= 1.0  # a few words before <END>
    f = features(cell, n=3)
    greedy = model.sample(f, max_length=6)
    ids, scores = beam_search(model, f, beam_size=1, max_length=6)
    np.testing.assert_array_equal(ids, greedy)
    ids, scores = beam_search(model, f, beam_size=3, max_length=6, length_normalization=False)
    np.testing.assert_allclose(scores, sequence_log_prob(model, f, ids), rtol=1e-10)
    assert (scores >= sequence_log_prob(model, f, greedy) - 1e-12).all()  # the beam finds no worse caption


def test_beam_search_carries_each_image_through_its_beams():
    model = tiny("attention")
    f = features("attention", n=3)
    ids, scores = beam_search(model, f, beam_size=3, max_length=5)
    for i in range(3):  # one image alone decodes as in the batch
        alone = beam_search(model, f[i:i + 1], beam_size=3, max_length=5)
        np.testing.assert_array_equal(alone[0][0], ids[i])


def test_spatial_features_are_checked():
    from gradscope.errors import ShapeError

    model = tiny("attention")
    with pytest.raises(ShapeError, match=r"\(N, L, 5\)"):
        model.sample(np.ones((2, 5)))


@pytest.mark.parametrize("source", ["synthetic:20", "coco:/nonexistent"])
def test_an_attention_captioner_on_a_source_without_regions_is_refused_before_training(tmp_path, source):
    from gradscope.captioning.train import train_captioner
    from gradscope.errors import GradscopeError

    with pytest.raises(GradscopeError, match="region features .* need flickr8k:DIR"):
        train_captioner(source, tmp_path / "run", cell_type="attention", num_epochs=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("float16", [False, True])
def test_save_and_load_an_attention_captioner(tmp_path, float16):
    model = tiny("attention", dtype=np.float32, attention_reg=0.5, dropout=0.2)
    save_captioner(tmp_path / "att.npz", model, float16=float16)
    loaded = load_captioner(tmp_path / "att.npz")
    assert (loaded.cell_type, loaded.attention_dim, loaded.dropout, loaded.attention_reg) == ("attention", 4, 0.2, 0.5)
    f = features("attention").astype(np.float32)
    if float16:
        assert all(np.allclose(loaded.params[k], model.params[k], atol=2e-3) for k in model.params)
    else:
        np.testing.assert_array_equal(loaded.sample(f), model.sample(f))


def test_the_shipped_captioners_load():
    from gradscope.captioning import DEFAULT_CAPTIONER, load_pretrained

    from gradscope.captioning import CaptionerEnsemble

    default = load_pretrained()
    assert DEFAULT_CAPTIONER == "ensemble" and isinstance(default, CaptionerEnsemble)
    assert [m.cell_type for m in default.members] == ["attention", "attention"]
    assert load_pretrained(name="attention").cell_type == "attention"
    model = load_pretrained(name="global")
    assert model.cell_type == "lstm" and not model.cell.spatial
    ids = model.sample(np.random.default_rng(0).random((1, model.input_dim)).astype(np.float32), max_length=5)
    assert ids.shape == (1, 5)
    from gradscope.errors import GradscopeError
    with pytest.raises(GradscopeError, match=r"dtype must be .*load_pretrained\(name='attention'\)"):
        load_pretrained("attention")                 # a name where the dtype goes
    with pytest.raises(GradscopeError, match="no shipped captioner named 'nope'"):
        load_pretrained(name="nope")


def test_one_caption_per_image_visits_every_image_once():
    from gradscope.captioning.train import _OneCaptionPerImage
    from gradscope.data.captions import CaptionDataset

    refs = [[["a", "b"], ["c"]], [["d"]], [["a"], ["b"], ["c", "d"]]]
    w2i = {**W2I, "<UNK>": len(W2I)}
    data = CaptionDataset.from_references(np.zeros((3, 2, 5), np.float16), refs, w2i,
                                          [w for w, _ in sorted(w2i.items(), key=lambda kv: kv[1])], 4)
    epoch = _OneCaptionPerImage(data)
    assert len(epoch) == 3
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        feats, caps = epoch.batch(np.arange(3), rng)
        assert feats.shape == (3, 2, 5) and feats.dtype == np.float32
        seen.add(tuple(caps[2]))
        assert caps[1][1] == w2i["d"]  # image 1 has one caption
    assert len(seen) == 3  # every caption of image 2 gets drawn
