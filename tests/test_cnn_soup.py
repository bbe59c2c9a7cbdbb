"""Model soups (gradscope.cnn.soup, `gradscope cnn soup`): weight averaging and batch-norm
statistics measured again, on tiny networks and a tiny generated TinyImageNet."""
import numpy as np
import pytest

from gradscope.cli import main
from gradscope.cnn import CNN, load_cnn, tiny_vgg
from gradscope.cnn.soup import average_weights, model_soup, recompute_batchnorm
from gradscope.errors import GradscopeError

from tiny_tinyimagenet import WNIDS, make_tiny_tinyimagenet


def _config(widths=(4, 6)):
    config = tiny_vgg(num_classes=3, widths=widths, input_size=8)
    config["classes"] = {"wnids": WNIDS, "names": ["a", "b", "c"]}
    return config


def _members(n=2):
    """n networks of one config with different weights and statistics (seeds 0, 1, ...)."""
    models = [CNN(_config(), seed=s) for s in range(n)]
    for s, m in enumerate(models):
        rng = np.random.default_rng(10 + s)
        for k in m.buffers:
            m.buffers[k] = (rng.uniform(0.5, 1.5, m.buffers[k].shape) if k.endswith("var")
                            else rng.normal(0, 0.3, m.buffers[k].shape)).astype(np.float32)
    return models


def test_average_is_the_weighted_mean_of_params_and_buffers():
    a, b = _members()
    soup = average_weights([a, b], [1, 3])  # normalised to 0.25, 0.75
    for k in a.params:
        np.testing.assert_allclose(soup.params[k], 0.25 * a.params[k] + 0.75 * b.params[k], rtol=1e-6, atol=1e-7)
    for k in a.buffers:
        np.testing.assert_allclose(soup.buffers[k], 0.25 * a.buffers[k] + 0.75 * b.buffers[k], rtol=1e-6, atol=1e-7)
    even = average_weights([a, b])
    np.testing.assert_allclose(even.params["fc.W"], (a.params["fc.W"] + b.params["fc.W"]) / 2, rtol=1e-6)
    assert soup.config["training"]["weights"] == [0.25, 0.75] and len(soup.config["training"]["members"]) == 2


def test_one_member_soup_is_the_member():
    (a,) = _members(1)
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(model_soup([a]).scores(a.preprocess(x)), a.scores(a.preprocess(x)))


def test_recompute_batchnorm_measures_the_batch_statistics():
    (a,) = _members(1)
    images = np.random.default_rng(1).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    first_conv, _ = a.forward_to(a.preprocess(images), "conv1")  # (12, 4, 8, 8): bn1 sees this in any mode
    # one batch of all images: bn1's statistics are that batch's (biased variance, as in training)
    one = recompute_batchnorm(CNN(a.config, a.params, a.buffers), images, batch_size=12)
    np.testing.assert_allclose(one.buffers["bn1.running_mean"], first_conv.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.buffers["bn1.running_var"], first_conv.var(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    # three batches of 4 (in the seeded order): the mean of the three batches' statistics
    order = np.random.default_rng(7).permutation(12)
    three = recompute_batchnorm(CNN(a.config, a.params, a.buffers), images, batch_size=4, seed=7)
    means = [first_conv[np.sort(order[i:i + 4])].mean(axis=(0, 2, 3)) for i in (0, 4, 8)]
    varis = [first_conv[np.sort(order[i:i + 4])].var(axis=(0, 2, 3)) for i in (0, 4, 8)]
    np.testing.assert_allclose(three.buffers["bn1.running_mean"], np.mean(means, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(three.buffers["bn1.running_var"], np.mean(varis, 0), rtol=1e-4, atol=1e-6)
    # the later layers' statistics changed too, the weights did not, and the config keeps its momentum
    assert not np.allclose(three.buffers["bn3.running_mean"], a.buffers["bn3.running_mean"])
    assert all(np.array_equal(three.params[k], a.params[k]) for k in a.params)
    assert [la.get("momentum") for la in three.layers] == [la.get("momentum") for la in a.layers]
    assert three.config["training"]["batchnorm_recomputed"]["images"] == 12


def test_recomputed_statistics_fix_an_averaged_network_on_its_data():
    """Two members whose averaged running statistics are wrong for the averaged weights: after
    recompute_batchnorm, test mode on the training batch equals train mode on it."""
    a, b = _members()
    images = np.random.default_rng(2).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    x = a.preprocess(images)
    soup = average_weights([a, b])
    fresh = CNN(soup.config, soup.params, soup.buffers)
    train_scores, _ = fresh.forward(x, mode="train")
    before = soup.scores(x)
    after = recompute_batchnorm(soup, images, batch_size=16).scores(x)
    assert np.abs(after - train_scores).max() < 1e-4 < np.abs(before - train_scores).max()


def test_soup_errors():
    a, b = _members()
    other = CNN(_config(widths=(4, 8)), seed=0)
    with pytest.raises(GradscopeError, match="another architecture"):
        average_weights([a, other])
    with pytest.raises(GradscopeError, match="one non-negative weight per model"):
        average_weights([a, b], [1.0])
    with pytest.raises(GradscopeError, match="at least one model"):
        average_weights([])
    with pytest.raises(GradscopeError, match="at least one image"):
        recompute_batchnorm(a, np.zeros((0, 8, 8, 3), np.uint8))


def test_cli_soup(tmp_path, capsys):
    data = make_tiny_tinyimagenet(tmp_path / "tin", per_class=4)
    paths = []
    for i, m in enumerate(_members()):
        paths.append(str(tmp_path / f"m{i}.json"))
        m.save(paths[-1], float16=False)
    out = tmp_path / "soup"
    assert main(["cnn", "soup", *paths, "--data", str(data), "--out", str(out), "--batch-size", "6"]) == 0
    text = capsys.readouterr().out
    assert "averaged 2 networks (batch-norm statistics from 12 training images)" in text
    soup = load_cnn(out / "model.json")
    expected = recompute_batchnorm(average_weights([load_cnn(p) for p in paths]),
                                   _train_images(data), batch_size=6)
    np.testing.assert_allclose(soup.buffers["bn2.running_var"], expected.buffers["bn2.running_var"], rtol=1e-5)
    np.testing.assert_allclose(soup.params["conv1.W"], expected.params["conv1.W"], rtol=1e-3, atol=1e-3)  # float16
    assert main(["cnn", "evaluate", "--data", str(data), "--model", str(out / "model.json")]) == 0
    capsys.readouterr()
    # bad input: one clear line, exit 2
    assert main(["cnn", "soup", *paths, "--mix", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--mix gives 1 weights for 2 models" in capsys.readouterr().err
    other = str(tmp_path / "other.json")
    CNN(_config(widths=(4, 8)), seed=0).save(other)
    assert main(["cnn", "soup", paths[0], other, "--out", str(tmp_path / "y")]) == 2
    assert "another architecture" in capsys.readouterr().err
    assert main(["cnn", "soup", str(tmp_path / "nope.json"), "--out", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _train_images(data):
    from gradscope.data.tinyimagenet import TinyImageNet

    return TinyImageNet(str(data), classes=WNIDS).load("train", per_class=30, size=8).X


def test_demo_shows_the_longest_members_curves_for_a_soup():
    from gradscope.demo.analyses import cnn_history, soup_size

    a, b = _members()
    a.config["training"] = {"history": [{"epoch": 1, "val_top1": 0.1}, {"epoch": 2, "val_top1": 0.2}]}
    b.config["training"] = {"history": a.config["training"]["history"] + [{"epoch": 3, "val_top1": 0.3}]}
    soup = average_weights([a, b])
    assert soup_size(soup) == 2 and soup_size(a) == 0
    assert [r["epoch"] for r in cnn_history(soup)] == [1, 2, 3] and len(cnn_history(a)) == 2
