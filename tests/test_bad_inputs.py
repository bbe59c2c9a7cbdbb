"""A corpus of bad or odd inputs run through the command line in-process: every case ends
with exit status 2 and exactly one line on stderr, `gradscope: error: ...`, never a
traceback; and a failed command leaves no output folder it created."""
import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gradscope.cli import main
from gradscope.imageio import load_image, save_image
from test_methods import tiny_cnn
from tiny_tinyimagenet import make_tiny_tinyimagenet


def _png(path, width, height, rows=b""):
    """A PNG file with the given header size (8-bit RGB); `rows` is its (possibly short) pixel data."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def f(tmp_path_factory):
    """Paths of the corpus' files: a tiny saved CNN, good and bad images, bad model files."""
    root = tmp_path_factory.mktemp("bad")
    tiny_cnn(seed=1).save(root / "m.json")
    from gradscope.cnn import CNN, tiny_vgg
    config = tiny_vgg(num_classes=3, widths=(4,), input_size=8)
    config["classes"] = {"wnids": ["n01", "n02", "n03"], "names": ["a", "b", "c"]}
    CNN(config).save(root / "tinymodel" / "model.json")
    rng = np.random.default_rng(0)
    save_image(root / "img.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    save_image(root / "one.png", np.zeros((1, 1, 3), np.uint8))
    save_image(root / "grey.png", np.full((16, 16, 3), 128, np.uint8))
    good = (root / "img.png").read_bytes()
    (root / "trunc.png").write_bytes(good[:len(good) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    _png(root / "bomb.png", 20000, 20000)  # 400 megapixels in the header, a few bytes of data
    (root / "afile").write_text("x")
    (root / "png_folder.png").mkdir()
    model_npz = (root / "m.npz").read_bytes()
    (root / "trunc").mkdir()
    (root / "trunc" / "model.json").write_bytes((root / "m.json").read_bytes())
    (root / "trunc" / "model.npz").write_bytes(model_npz[:len(model_npz) // 2])
    (root / "emptynpz").mkdir()
    (root / "emptynpz" / "model.json").write_bytes((root / "m.json").read_bytes())
    (root / "emptynpz" / "model.npz").write_bytes(b"")
    (root / "badjson.json").write_text("{not json")
    (root / "empty_captioner.npz").write_bytes(b"")
    (root / "trunc_captioner.npz").write_bytes(model_npz[:100])
    (root / "run_badckpt").mkdir()
    (root / "run_badckpt" / "checkpoint.npz").write_bytes(model_npz[:200])
    (root / "run_emptyckpt").mkdir()
    (root / "run_emptyckpt" / "checkpoint.pt").write_bytes(b"")
    (root / "run_emptyckpt2").mkdir()
    (root / "run_emptyckpt2" / "checkpoint.npz").write_bytes(b"")
    (root / "empty_run").mkdir()
    make_tiny_tinyimagenet(root / "tin")
    bad = make_tiny_tinyimagenet(root / "tin_badbox")
    (bad / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn01\t1\tx\t3\t4\n")
    (bad / "train" / "n01" / "n01_boxes.txt").write_text("n01_0.JPEG\t1\t2\tthree\t4\n")
    (root / "tin_nowords").mkdir()
    (root / "tin_nowords" / "wnids.txt").write_text("\n\n")
    (root / "f8k").mkdir()
    (root / "f8k" / "Flickr8k.token.txt").write_bytes(b"\xff\xfe\x00bad")
    (root / "f8k" / "Flickr_8k.devImages.txt").write_text("a.jpg\n")
    return root


M = ["--model", "{m}"]
CASES = {
    # images
    "missing image": ["classify", "{r}/nope.png", *M],
    "image is a folder": ["classify", "{r}", *M],
    "truncated image": ["classify", "{r}/trunc.png", *M],
    "empty image": ["classify", "{r}/empty.png", *M],
    "text as image": ["classify", "{r}/text.png", *M],
    "constant image saliency": ["saliency", "{r}/img.png", "{r}/grey.png", "-o", "{r}/never", *M],
    "constant image demo": ["demo", "--quick", "--images", "{r}/img.png", "{r}/grey.png", "-o", "{r}/never"],
    "decompression bomb": ["classify", "{r}/bomb.png", *M],
    "1x1 image": ["classify", "{r}/one.png", *M],
    "1x1 image captioned": ["caption", "{r}/one.png"],
    # counts and numbers at the parser
    "top 0": ["classify", "{r}/img.png", "--top", "0", *M],
    "top not a number": ["classify", "{r}/img.png", "--top", "five", *M],
    "caption beam 0": ["caption", "{r}/img.png", "--beam", "0"],
    "caption beam 100000": ["caption", "{r}/img.png", "--beam", "100000"],
    "caption max-length 0": ["caption", "{r}/img.png", "--max-length", "0"],
    "caption length-norm nan": ["caption", "{r}/img.png", "--length-norm", "nan"],
    "sample n -1": ["caption", "sample", "--data", "synthetic:40", "--n", "-1"],
    "sample n 0": ["caption", "sample", "--data", "synthetic:40", "--n", "0"],
    "evaluate max-images -1": ["caption", "evaluate", "--data", "synthetic:40", "--max-images", "-1"],
    "train batch-size 0": ["caption", "train", "--batch-size", "0", "--out", "{r}/never"],
    "train epochs 0": ["caption", "train", "--epochs", "0", "--out", "{r}/never"],
    "train seed -1": ["caption", "train", "--seed", "-1", "--out", "{r}/never"],
    "train lr 0": ["caption", "train", "--lr", "0", "--out", "{r}/never"],
    "train hidden -5": ["caption", "train", "--hidden", "-5", "--out", "{r}/never"],
    "cnn train widths": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/never", "--widths", "4,x"],
    "cnn train schedule": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/never", "--epochs-schedule", "32"],
    "cnn train schedule 0": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/never", "--epochs-schedule", "32:0"],
    "cnn evaluate batch 0": ["cnn", "evaluate", "--data", "{r}/tin", "--batch-size", "0", *M],
    "cnn layers input 0": ["cnn", "layers", "--input-size", "0", *M],
    "demo seed -1": ["demo", "--seed", "-1", "-o", "{r}/never"],
    "unknown command": ["frobnicate"],
    "unknown option": ["classify", "{r}/img.png", "--frob", *M],
    # model, captioner and checkpoint files
    "truncated model npz": ["classify", "{r}/img.png", "--model", "{r}/trunc/model.json"],
    "empty model npz": ["classify", "{r}/img.png", "--model", "{r}/emptynpz"],
    "corrupt model json": ["classify", "{r}/img.png", "--model", "{r}/badjson.json"],
    "missing model": ["classify", "{r}/img.png", "--model", "{r}/none.json"],
    "unknown model spec": ["classify", "{r}/img.png", "--model", "resnet"],
    "empty captioner": ["caption", "{r}/img.png", "--model", "{r}/empty_captioner.npz"],
    "truncated captioner": ["caption", "{r}/img.png", "--model", "{r}/trunc_captioner.npz"],
    "captioner is a folder": ["caption", "{r}/img.png", "--model", "{r}"],
    "resume corrupt checkpoint": ["caption", "train", "--data", "synthetic:40", "--hidden", "8", "--wordvec", "4",
                                  "--epochs", "1", "--val-images", "0", "--no-progress", "--resume",
                                  "--out", "{r}/run_badckpt"],
    "resume empty checkpoint": ["caption", "train", "--data", "synthetic:40", "--hidden", "8", "--wordvec", "4",
                                "--epochs", "1", "--val-images", "0", "--no-progress", "--resume",
                                "--out", "{r}/run_emptyckpt2"],
    "resume without checkpoint": ["caption", "train", "--data", "synthetic:40", "--epochs", "1", "--resume",
                                  "--no-progress", "--out", "{r}/empty_run"],
    "cnn resume without checkpoint": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/empty_run", "--resume",
                                      "--engine", "numpy"],
    "cnn resume empty torch checkpoint": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/run_emptyckpt",
                                          "--resume", "--epochs-schedule", "8:1", "--widths", "4,6"],
    "cnn train missing data": ["cnn", "train", "--data", "{r}/none", "--out", "{r}/never", "--engine", "numpy"],
    # outputs that cannot be written
    "train out is a file": ["caption", "train", "--data", "synthetic:40", "--out", "{r}/afile"],
    "train out parent is a file": ["caption", "train", "--data", "synthetic:40", "--out", "{r}/afile/run"],
    "train out read-only": ["caption", "train", "--data", "synthetic:40", "--out", "/sys/gradscope-run"],
    "cnn train out is a file": ["cnn", "train", "--data", "{r}/tin", "--out", "{r}/afile", "--engine", "numpy"],
    "demo out is a file": ["demo", "-o", "{r}/afile"],
    "demo out parent is a file": ["demo", "-o", "{r}/afile/demo"],
    "demo out read-only": ["demo", "-o", "/sys/gradscope-demo"],
    "download dir is a file": ["data", "download", "coco", "--dir", "{r}/afile", "--no-progress"],
    "download dir read-only": ["data", "download", "coco", "--dir", "/sys/gradscope-data", "--no-progress"],
    # downloads and data folders
    "malformed url": ["data", "download", "coco", "--dir", "{r}/dl", "--url", "htp:/nowhere", "--no-progress"],
    "url without host": ["data", "download", "coco", "--dir", "{r}/dl", "--url", "https://", "--no-progress"],
    "plain http url": ["data", "download", "coco", "--dir", "{r}/dl", "--url", "http://example.com/c.zip",
                       "--no-progress"],
    "bad sha256": ["data", "download", "coco", "--dir", "{r}/dl", "--sha256", "abc", "--no-progress"],
    "flickr8k missing folder": ["caption", "evaluate", "--data", "flickr8k:{r}/none"],
    "synthetic:0": ["caption", "evaluate", "--data", "synthetic:0"],
    "not a tinyimagenet folder": ["cnn", "evaluate", "--data", "{r}", *M],
    # the method commands: counts, outputs
    "saliency samples 0": ["saliency", "{r}/img.png", "--method", "smoothgrad", "--samples", "0", "-o", "{r}/never", *M],
    "saliency points 0": ["saliency", "{r}/img.png", "--method", "ig", "--points", "0", "-o", "{r}/never", *M],
    "saliency sigma -1": ["saliency", "{r}/img.png", "--sigma", "-1", "-o", "{r}/never", *M],
    "saliency without -o": ["saliency", "{r}/img.png", *M],
    "saliency evaluate n 0": ["saliency", "evaluate", "--data", "{r}/tin", "--n", "0", *M],
    "saliency evaluate step 0": ["saliency", "evaluate", "--data", "{r}/tin", "--step", "0", *M],
    "saliency evaluate no data": ["saliency", "evaluate", *M],
    "saliency evaluate with images": ["saliency", "evaluate", "{r}/img.png", "--data", "{r}/tin", *M],
    "fool n 0": ["fool", "--data", "{r}/tin", "--n", "0", *M],
    "fool n -1": ["fool", "--data", "{r}/tin", "--n", "-1", *M],
    "fool max-iter 0": ["fool", "{r}/img.png", "--target", "2", "--max-iter", "0", "-o", "{r}/never", *M],
    "fool step-size 0": ["fool", "{r}/img.png", "--target", "2", "--step-size", "0", "-o", "{r}/never", *M],
    "fool unknown target": ["fool", "{r}/img.png", "--target", "zebra", "-o", "{r}/never", *M],
    "fool no target": ["fool", "{r}/img.png", "-o", "{r}/never", *M],
    "classvis iterations 0": ["classvis", "2", "--iterations", "0", "-o", "{r}/never", *M],
    "classvis octaves 0": ["classvis", "2", "--octaves", "0", "-o", "{r}/never", *M],
    "classvis seed -1": ["classvis", "2", "--seed", "-1", "-o", "{r}/never", *M],
    "classvis jitter -1": ["classvis", "2", "--jitter", "-1", "-o", "{r}/never", *M],
    "classvis lr nan": ["classvis", "2", "--lr", "nan", "-o", "{r}/never", *M],
    "invert unknown layer": ["invert", "{r}/img.png", "--layer", "relu9", "-o", "{r}/never", *M],
    "dream octaves 0": ["dream", "{r}/img.png", "--layer", "relu2", "--octaves", "0", "-o", "{r}/never", *M],
    "dream octave-scale 1": ["dream", "{r}/img.png", "--layer", "relu2", "--octave-scale", "1", "-o", "{r}/never",
                             *M],
    "dream 1x1 image": ["dream", "{r}/one.png", "--layer", "relu2", "-o", "{r}/never", *M],
    "classvis out is a file": ["classvis", "2", "--iterations", "1", "-o", "{r}/afile", *M],
    "saliency out parent is a file": ["saliency", "{r}/img.png", "-o", "{r}/afile/maps", *M],
    "saliency out read-only": ["saliency", "{r}/img.png", "-o", "/sys/gradscope-maps", *M],
    "invert -o a png file name": ["invert", "{r}/img.png", "--layer", "relu1", "-o", "{r}/inverted.png", *M],
    "fool data out is a file": ["fool", "--data", "{r}/tin", "--n", "1", "-o", "{r}/afile", *M],
    "bad box in val annotations": ["cnn", "evaluate", "--data", "{r}/tin_badbox", "--model", "{r}/tinymodel"],
    "bad box in train boxes": ["cnn", "train", "--data", "{r}/tin_badbox", "--out", "{r}/never", "--engine", "numpy"],
    "empty wnids.txt": ["cnn", "train", "--data", "{r}/tin_nowords", "--out", "{r}/never", "--engine", "numpy"],
    "flickr8k token file not text": ["caption", "evaluate", "--data", "flickr8k:{r}/f8k", "--split", "dev"],
}


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clean_line(name, f, capsys):
    argv = [a.format(r=f, m=f / "m.json") for a in CASES[name]]
    code, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (name, code, err)
    assert len(lines) == 1 and lines[0].startswith("gradscope: error: "), (name, err)
    assert "Traceback" not in err
    assert not os.path.exists(f / "never") and not os.path.exists(f / "dl")  # nothing created, nothing left
    assert os.path.isfile(f / "afile") and os.path.isdir(f / "png_folder.png")


def test_messages_name_the_problem(f, capsys):
    expect = {"decompression bomb": "20000x20000", "1x1 image": "1x1", "caption beam 100000": "between 1 and",
              "truncated model npz": "truncated", "empty captioner": "empty", "resume without checkpoint": "resume",
              "train out is a file": "existing file", "train out parent is a file": "is a file",
              "train out read-only": "cannot write", "malformed url": "malformed", "plain http url": "https",
              "resume corrupt checkpoint": "checkpoint.npz", "constant image saliency": "grey.png' is constant",
              "constant image demo": "grey.png' is one colour everywhere"}
    for name, word in expect.items():
        _, err = run([a.format(r=f, m=f / "m.json") for a in CASES[name]], capsys)
        assert word in err, (name, err)


def test_internal_error_says_bug_and_debug_shows_traceback(monkeypatch, f, capsys):
    import gradscope.cli.cnn as cnn_cli

    def broken(args):
        raise TypeError("boom")

    monkeypatch.setattr(cnn_cli, "run_layers", broken)
    argv = ["cnn", "layers", "--model", str(f / "m.json")]
    code, err = run(argv, capsys)
    assert code == 1 and "bug in gradscope" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, err = run(argv + ["--debug"], capsys)
    assert code == 1 and "Traceback" in err and "TypeError: boom" in err
    monkeypatch.setenv("GRADSCOPE_DEBUG", "1")
    code, err = run(argv, capsys)
    assert "Traceback" in err


def test_failed_command_removes_the_folder_it_created(f, capsys):
    out = f / "new" / "run"
    code, err = run(["caption", "train", "--data", "flickr8k:" + str(f / "none"), "--out", str(out)], capsys)
    assert code == 2 and not os.path.exists(f / "new")
    (f / "kept").mkdir()
    code, _ = run(["caption", "train", "--data", "flickr8k:" + str(f / "none"), "--out", str(f / "kept")], capsys)
    assert code == 2 and os.path.isdir(f / "kept")  # an existing folder is never removed


def test_images_decode_alike(tmp_path):
    """16-bit grey, palette, CMYK, LA and EXIF-rotated files decode to the same pixels as their
    8-bit RGB originals."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.array_equal(load_image(tmp_path / "g16.png"), rgb)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    assert np.abs(load_image(tmp_path / "p.png").astype(int) - rgb).max() <= 8
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.tif")
    assert np.array_equal(load_image(tmp_path / "c.tif"), rgb)
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(load_image(tmp_path / "la.png"), rgb)
    clear = np.dstack([rgb, np.zeros_like(grey)])
    Image.fromarray(clear, mode="RGBA").save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()  # transparent -> white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    shown = load_image(tmp_path / "rot.jpg")
    assert shown.shape == (10, 12, 3)


def test_16bit_and_8bit_grey_classify_alike(f, tmp_path, capsys):
    grey = np.random.default_rng(3).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    outs = []
    for name in ("g8.png", "g16.png"):
        assert main(["classify", str(tmp_path / name), "--model", str(f / "m.json"), "--json"]) == 0
        outs.append(capsys.readouterr().out.replace(name, ""))
    assert outs[0] == outs[1]


def test_torchvision_that_cannot_load_its_ops(f, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(__import__("sys").modules, "torchvision", raising=False)
    code, err = run(["classify", str(f / "img.png"), "--model", "torchvision:resnet18", "--weights",
                     str(f / "w.pt")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be loaded" in err and "Traceback" not in err


@pytest.mark.parametrize("weights", ["empty", "truncated", "code"])
def test_bad_torch_weight_files(weights, f, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    (tmp_path / "net.py").write_text("import torch\n\ndef make():\n"
                                     "    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),"
                                     " torch.nn.Linear(3, 4))\n")
    good = tmp_path / "good.pt"
    torch.save(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 4))
               .state_dict(), good)
    path = tmp_path / "w.pt"
    if weights == "empty":
        path.write_bytes(b"")
    elif weights == "truncated":
        path.write_bytes(good.read_bytes()[:200])
    else:
        torch.save({"obj": Exception("runs code")}, path)
    code, err = run(["classify", str(f / "img.png"), "--model", f"{tmp_path / 'net.py'}:make", "--weights",
                     str(path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert main(["classify", str(f / "img.png"), "--model", f"{tmp_path / 'net.py'}:make", "--weights",
                 str(good)]) == 0


FIXED = '''import torch
from gradscope.torch import TorchModel


class Fixed(torch.nn.Module):
    """A classifier that, like a ViT, takes one input size only."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 16 * 16, 5)

    def forward(self, x):
        assert x.shape[-2:] == (16, 16), "Wrong image height!"
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make():
    torch.manual_seed(0)
    return TorchModel(Fixed(), mean=[0.5] * 3, std=[0.5] * 3, input_size=16, pixel_range=(0, 1))
'''


def test_fixed_input_size_models_under_octaves(f, tmp_path, capsys):
    pytest.importorskip("torch")
    (tmp_path / "fixed.py").write_text(FIXED)
    model = ["--model", f"{tmp_path / 'fixed.py'}:make"]
    save_image(tmp_path / "wide.png", np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    for argv in (["classvis", "1", "--recipe", "pixel", "--octaves", "3", "--iterations", "3"],
                 ["dream", str(tmp_path / "wide.png"), "--layer", "conv", "--octaves", "3", "--iterations", "3"]):
        code, err = run([*argv, "-o", str(tmp_path / "never"), *model], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "fixed input size of 16x16" in err and "--octaves 1" in err
        assert not (tmp_path / "never").exists()
    # a model of any size (global pooling) whose smallest octave is too small for its pooling layers
    code, err = run(["dream", str(tmp_path / "wide.png"), "--layer", "relu2", "--octaves", "4", "--octave-scale", "3",
                     "--iterations", "1", "-o", str(tmp_path / "never"), "--model", "tinyimagenet"], capsys)
    assert code == 2 and "the smallest octave is too small" in err and "fixed input size" not in err, err
    # one octave: the image is resized to the model's size instead of kept at 20x30
    assert main(["dream", str(tmp_path / "wide.png"), "--layer", "conv", "--octaves", "1", "--iterations", "2",
                 "-o", str(tmp_path / "d"), *model]) == 0
    assert load_image(tmp_path / "d" / "wide_conv_dream.png").shape == (16, 16, 3)


# ---- numbers and names: ranges from gradscope/cli/args.py's RANGES, checked before any work

@pytest.mark.parametrize("argv, flag", [
    (["saliency", "maps", "x.png", "--method", "smoothgrad", "--sigma", "1e300", "-o", "o"], "--sigma"),
    (["classvis", "0", "--blur-sigma", "1e300", "-o", "o"], "--blur-sigma"),
    (["classvis", "0", "--lr", "nan", "-o", "o"], "--lr"),
    (["caption", "train", "--lr", "inf", "--out", "o"], "--lr"),
    (["caption", "explain", "x.png", "--fraction", "1.5", "-o", "o"], "--fraction"),
    (["caption", "x.png", "--length-norm", "1e9"], "--length-norm"),
])
def test_numbers_out_of_range_are_one_line(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"argument {flag}" in err[0] and ("must be in" in err[0] or "finite" in err[0]), err
    assert os.listdir(tmp_path) == []


def test_empty_output_name_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["caption", "train", "--data", "synthetic:20", "--out", ""]) == 2
    assert "--out needs a folder name" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_malformed_progress_interval_only_matters_when_used(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, GRADSCOPE_PROGRESS_INTERVAL="soon", PYTHONPATH=root)
    helped = subprocess.run([sys.executable, "-m", "gradscope", "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "usage" in helped.stdout
    used = subprocess.run([sys.executable, "-m", "gradscope", "caption", "train", "--data", "synthetic:20",
                           "--epochs", "1", "--out", str(tmp_path / "o")], env=env, capture_output=True, text=True)
    assert used.returncode == 2 and used.stderr.strip() == (
        "gradscope: error: GRADSCOPE_PROGRESS_INTERVAL must be a number of seconds >= 0, got 'soon'")
