"""Word-level caption saliency: gradients checked numerically on a tiny CNN + captioner (float64)."""
import json
import os

import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN, beam_search, sequence_log_prob
from gradscope.captioning.explain import (MAPS, MapInputs, _deletion, deletion_baseline, deletion_drops,
                                          explain_caption, integrated_gradients_map, occlusion_map,
                                          word_feature_gradients, word_image_gradients, word_log_probs)
from gradscope.captioning.features import CNNFeatures
from gradscope.cnn import CNN, tiny_vgg
from gradscope.gradcheck import eval_numerical_gradient_array, rel_error
from json_schema import check_output

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "dog": 5, "runs": 6, "cat": 7}


def _tiny(cell="lstm", dtype=np.float64):
    cnn = CNN(tiny_vgg(num_classes=5, widths=(4, 6), input_size=12, hidden=10), seed=1, dtype=dtype)
    rng = np.random.default_rng(2)
    for k in cnn.buffers:  # non-trivial batch-norm statistics
        cnn.buffers[k] = (rng.uniform(0.5, 1.5, cnn.buffers[k].shape) if "var" in k
                          else rng.normal(0, 0.2, cnn.buffers[k].shape)).astype(dtype)
    extractor = CNNFeatures(cnn)
    captioner = CaptioningRNN(WORDS, input_dim=extractor.dim, wordvec_dim=5, hidden_dim=6, cell_type=cell,
                              dtype=dtype, seed=3)
    for k, v in captioner.params.items():  # larger weights: gradients well above rounding noise
        captioner.params[k] = v * 3
    return captioner, extractor


def _image(seed=0, size=12):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_word_log_probs_sum_to_the_sequence_log_prob(cell):
    captioner, extractor = _tiny(cell)
    feats = extractor(_image()[None])
    words = np.array([4, 5, 6, 2])
    logp = word_log_probs(captioner, feats[0], words)
    np.testing.assert_allclose(logp.sum(), sequence_log_prob(captioner, feats, words[None])[0], rtol=1e-10)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_feature_gradients_match_numeric_differences(cell):
    captioner, extractor = _tiny(cell)
    feats = extractor(_image()[None])[0].astype(np.float64)
    words = np.array([4, 5, 6, 7, 5])
    upstream = np.random.default_rng(4).standard_normal(len(words))
    _, dfeats = word_feature_gradients(captioner, feats, words)
    num = eval_numerical_gradient_array(lambda f: word_log_probs(captioner, f, words), feats, upstream)
    assert rel_error(upstream @ dfeats, num) < 1e-7


def test_image_gradients_match_numeric_differences():
    captioner, extractor = _tiny()
    x = extractor.model.preprocess([_image(5)])  # (1, 3, 12, 12)
    words = np.array([4, 7, 6])
    upstream = np.random.default_rng(6).standard_normal(len(words))

    def logp_of(x_):
        act, _ = extractor.model.forward_to(x_, extractor.layer)
        return word_log_probs(captioner, act.reshape(-1), words)

    logp, dx = word_image_gradients(captioner, extractor, x, words)
    np.testing.assert_allclose(logp, logp_of(x), rtol=1e-12)
    num = eval_numerical_gradient_array(logp_of, x, upstream, h=1e-5)
    assert dx.shape == (3, 3, 12, 12)
    assert rel_error(np.tensordot(upstream, dx, axes=1)[None], num) < 1e-5
    for t in range(len(words)):  # each row is its own word's gradient, not a mixture
        one = np.eye(len(words))[t]
        assert rel_error(dx[t][None], eval_numerical_gradient_array(logp_of, x, one, h=1e-5)) < 1e-5


def test_deletion_drops_are_the_log_prob_falls_of_masked_images():
    captioner, extractor = _tiny()
    x = extractor.model.preprocess([_image(1)])
    words = np.array([4, 5])
    maps = np.random.default_rng(0).random((2, 12, 12))
    top, rand = deletion_drops(captioner, extractor, x, words, maps, fraction=0.25, seed=3)
    k = 36  # 25% of 144 pixels
    for t in range(2):
        mask = np.zeros(144, bool)
        mask[np.argsort(-maps[t].ravel())[:k]] = True
        masked = np.where(mask.reshape(1, 1, 12, 12), x.mean(axis=(2, 3), keepdims=True), x)
        f0 = extractor.model.forward_to(x, extractor.layer)[0].reshape(-1)
        f1 = extractor.model.forward_to(masked, extractor.layer)[0].reshape(-1)
        expected = word_log_probs(captioner, f0, words)[t] - word_log_probs(captioner, f1, words)[t]
        np.testing.assert_allclose(top[t], expected, rtol=1e-9)
    again = deletion_drops(captioner, extractor, x, words, maps, fraction=0.25, seed=3)
    np.testing.assert_array_equal(rand, again[1])  # seeded
    assert not np.allclose(rand, deletion_drops(captioner, extractor, x, words, maps, 0.25, seed=4)[1])


def _map_inputs(seed, size=12, T=4):
    captioner, extractor = _tiny()
    x = extractor.model.preprocess([_image(seed, size)])  # (1, 3, size, size)
    words = np.random.default_rng(seed).integers(3, 8, T)
    _, grads = word_image_gradients(captioner, extractor, x, words)
    return MapInputs(captioner, extractor, x, words, grads, deletion_baseline(x))


def _logp_of(inputs):
    ext = inputs.extractor
    return lambda x_: word_log_probs(inputs.captioner, ext.model.forward_to(x_, ext.layer)[0].reshape(-1),
                                     inputs.words)


def test_contribution_map_is_numeric_gradient_times_input_minus_mean():
    inputs = _map_inputs(7)
    x, mean = inputs.x, inputs.x.mean(axis=(2, 3), keepdims=True)
    logp_of, h = _logp_of(inputs), 1e-5
    num = np.zeros(inputs.gradients.shape)  # (T, 3, H, W) central differences of every word's log-prob
    for idx in np.ndindex(x.shape[1:]):
        up, down = x.copy(), x.copy()
        up[(0,) + idx] += h
        down[(0,) + idx] -= h
        num[(slice(None),) + idx] = (logp_of(up) - logp_of(down)) / (2 * h)
    got = MAPS["contribution"].compute(inputs)  # (T, H, W)
    np.testing.assert_allclose(got, (num * (x - mean)).sum(axis=1), rtol=1e-4, atol=1e-9)
    eps = 1e-6  # summed over pixels: the log-prob's fall along the step towards the mean image
    np.testing.assert_allclose(got.sum(axis=(1, 2)), (logp_of(x) - logp_of(x - eps * (x - mean))) / eps, rtol=1e-4)


def test_integrated_gradients_sum_to_the_fall_to_the_mean_image():
    inputs = _map_inputs(3, size=16)
    logp_of = _logp_of(inputs)
    fall = logp_of(inputs.x) - logp_of(np.broadcast_to(inputs.baseline, inputs.x.shape).copy())
    ig = integrated_gradients_map(inputs, steps=64)
    assert np.abs(fall).max() > 0.05  # the mean image changes the words' log-probs
    np.testing.assert_allclose(ig.sum(axis=(1, 2)), fall, atol=0.01)  # completeness, up to the midpoint rule
    assert rel_error(integrated_gradients_map(inputs, steps=1), MAPS["contribution"].compute(
        MapInputs(inputs.captioner, inputs.extractor, inputs.x, inputs.words, word_image_gradients(
            inputs.captioner, inputs.extractor, (inputs.x + inputs.baseline) / 2, inputs.words)[1],
            inputs.baseline))) < 1e-12  # one step: the gradient at the midpoint x (x - mean)


def test_occlusion_map_averages_the_falls_of_the_patches_covering_a_pixel():
    inputs = _map_inputs(5)
    logp_of, x = _logp_of(inputs), inputs.x
    got = occlusion_map(inputs, patch=6, stride=3, chunk=4)  # 3 x 3 patches of 6 px on 12 px
    falls = {}
    for i in (0, 3, 6):
        for j in (0, 3, 6):
            occluded = x.copy()
            occluded[0, :, i:i + 6, j:j + 6] = inputs.baseline[0]
            falls[i, j] = logp_of(x) - logp_of(occluded)
    np.testing.assert_allclose(got[:, 0, 0], falls[0, 0], rtol=1e-9)  # one patch covers the corner
    np.testing.assert_allclose(got[:, 4, 7], np.mean([falls[i, j] for i in (0, 3) for j in (3, 6)], axis=0),
                               rtol=1e-9)


def test_contribution_top_pixels_drop_the_word_more_than_random_pixels():
    beats = []
    for seed in range(4):  # tiny seeded captioner + CNN, 24-px photos, random caption words
        inputs = _map_inputs(seed, size=24, T=6)
        maps = [MAPS[k].compute(inputs) for k in ("contribution", "gradient")]
        (top, grad_top), rand = _deletion(inputs.captioner, inputs.extractor, inputs.x, inputs.words, maps, 0.1, seed)
        beats.append((top > rand).mean())
        assert (top > grad_top).mean() >= 0.5  # and more than the |gradient| map's top pixels, mostly
    assert np.mean(beats) >= 0.9, beats


def test_explain_caption_explains_the_decoded_caption(tmp_path):
    captioner, extractor = _tiny(dtype=np.float32)
    captioner.params["b_vocab"][2] = -5.0  # a caption of a few words before <END>
    stages = []
    result = explain_caption(captioner, extractor, _image(2, 20), name="photo.jpg", beam=2, max_length=4,
                             callback=lambda stage, done, total: stages.append((stage, done)))
    from gradscope.captioning import beam_search
    ids = beam_search(captioner, extractor(_image(2, 20)[None]), beam_size=2, max_length=4)[0][0]
    expected = [captioner.idx_to_word[i] for i in ids if i not in (0, 2)]
    assert result.words == expected[:len(result.words)] and len(result.words) >= 1
    assert result.map_name == "contribution" and result.maps.shape == (len(result.words), 12, 12)
    x = extractor.model.preprocess([_image(2, 20)])
    np.testing.assert_allclose(result.maps, (result.gradients * (x - x.mean(axis=(2, 3), keepdims=True))).sum(axis=1),
                               rtol=1e-5, atol=1e-9)
    assert list(result.other_maps) == ["gradient"]  # the free maps only, unless asked
    np.testing.assert_allclose(result.other_maps["gradient"], np.abs(result.gradients).max(axis=1))
    assert np.isfinite(result.drop_top).all() and np.isfinite(result.drop_random).all()
    assert ("gradients", 1) in stages and ("deletion", 1) in stages
    saved = result.save(tmp_path)
    assert saved["caption"] == result.caption and saved["image"] == "photo.jpg"
    assert len(saved["words"]) == len(result.words)
    for w in saved["words"]:
        assert set(w) == {"word", "logprob", "map_png", "deletion_drop_top", "deletion_drop_random",
                          "gradient_deletion_drop_top", "gradient_deletion_drop_random"}
        assert (tmp_path / w["map_png"].rsplit("/", 1)[-1]).stat().st_size > 1000
    assert (tmp_path / "photo_caption.png").exists()
    json.dumps(saved)


def test_cli_explain_writes_pngs_strip_and_json(tmp_path, monkeypatch, capsys):
    import gradscope.captioning.features as features_module
    from gradscope.captioning import save_captioner
    from gradscope.cli import main
    from gradscope.imageio import save_image

    captioner, extractor = _tiny(dtype=np.float32)
    captioner.params["b_vocab"][2] = -5.0
    extractor.name = "tiny:relu_fc1"
    captioner.info = {"features": extractor.name, "features_fingerprint": extractor.fingerprint()}
    monkeypatch.setitem(features_module._EXTRACTORS, "tiny", lambda: extractor)
    save_captioner(tmp_path / "cap.npz", captioner)
    for name in ("a", "b"):
        save_image(tmp_path / f"{name}.png", _image(ord(name), 20))
    out = tmp_path / "out"
    argv = ["caption", "explain", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out),
            "--model", str(tmp_path / "cap.npz"), "--max-length", "4"]
    assert main(argv + ["--json"]) == 0
    d = check_output(capsys.readouterr().out, "caption explain")
    rows = d["results"]
    assert [r["image"] for r in rows] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert d == json.loads((out / "explain.json").read_text())
    for row in rows:
        assert row["caption"] == " ".join(w["word"] for w in row["words"])
        assert all(os.path.isfile(w["map_png"]) for w in row["words"]) and os.path.isfile(row["figure"])
    main(["caption", argv[2], "--model", argv[-3], "--max-length", "4"])  # the same caption as `caption IMAGE`
    assert f": {rows[0]['caption']}  (log p " in capsys.readouterr().out
    assert main(argv) == 2 and "not empty" in capsys.readouterr().err  # the earlier run is kept
    assert main(argv + ["--overwrite"]) == 0
    assert "more than random deletion for" in capsys.readouterr().out
    assert main(argv + ["--overwrite", "--map", "gradient", "--all-maps", "--json"]) == 0
    row = check_output(capsys.readouterr().out, "caption explain")["results"][0]
    assert row["map"] == "gradient" and set(row["words"][0]) == {
        "word", "logprob", "map_png", "deletion_drop_top", "deletion_drop_random"} | {
        f"{m}_deletion_drop_{k}" for m in ("contribution", "integrated", "occlusion") for k in ("top", "random")}
    assert main(argv + ["--overwrite", "--map", "attention"]) == 2  # no attention in an LSTM captioner
    assert "no 'attention' map" in capsys.readouterr().err
    assert main(argv[:4] + [str(tmp_path / "missing.png"), "-o", str(out), "--overwrite"]) == 2
    assert main(argv + ["--fraction", "1.5"]) == 2


def test_demo_section_explains_the_first_photo(monkeypatch):
    from types import SimpleNamespace

    from demo_models import photo, tiny_captioner, use_tiny_models
    from gradscope.demo.explain_section import explain_words
    from gradscope.demo.settings import QUICK

    use_tiny_models(monkeypatch)
    ctx = SimpleNamespace(photos=[SimpleNamespace(name="p", pixels=photo(3))], settings=QUICK, seed=0,
                          models=SimpleNamespace(captioner=tiny_captioner()))
    section = explain_words(ctx, None)
    words = section.numbers["words"]
    assert section.numbers["caption"] == " ".join(w["word"] for w in words) and words
    assert 0 <= section.numbers["faithful_fraction"] <= 1 and len(section.tables[0].rows) == len(words)
    assert section.visuals[0].image is not None and "of %d words" % len(words) in section.summary[0]


def _tiny_ensemble(dtype=np.float64):
    from gradscope.captioning import CaptionerEnsemble

    first, extractor = _tiny("lstm", dtype)
    second = CaptioningRNN(WORDS, input_dim=extractor.dim, wordvec_dim=5, hidden_dim=6, cell_type="lstm",
                           dtype=dtype, seed=9)
    for k, v in second.params.items():
        second.params[k] = v * 3
    return CaptionerEnsemble([first, second]), extractor


def test_ensemble_word_gradients_match_numeric_differences():
    ensemble, extractor = _tiny_ensemble()
    feats = extractor(_image(3)[None]).astype(np.float64)
    words = np.array([4, 5, 6, 7, 2])
    logp, dfeats = word_feature_gradients(ensemble, feats[0], words)
    np.testing.assert_allclose(logp.sum(), sequence_log_prob(ensemble, feats, words[None])[0], rtol=1e-10)
    upstream = np.random.default_rng(5).standard_normal(len(words))
    num = eval_numerical_gradient_array(lambda f: word_log_probs(ensemble, f, words), feats[0].copy(), upstream)
    assert rel_error(upstream @ dfeats, num) < 1e-7


def test_explain_caption_explains_an_ensembles_caption():
    ensemble, extractor = _tiny_ensemble(np.float32)
    result = explain_caption(ensemble, extractor, _image(2, 20), beam=2, max_length=4)
    ids = beam_search(ensemble, extractor(_image(2, 20)[None]), beam_size=2, max_length=4)[0][0]
    assert result.words == [ensemble.idx_to_word[i] for i in ids if i not in (0, 2)][:len(result.words)]
    assert result.maps.shape[1:] == (12, 12) and np.isfinite(result.drop_top).all()
