"""Every command line README.md and scripts/ document keeps working: each runs on tiny
inputs, or (for the long ones) parses to its handler and shows its --help."""
import shlex

import numpy as np
import pytest

from gradscope.cli import build_parser, expand_default_subcommand, main
from gradscope.imageio import save_image
from test_methods import tiny_cnn
from tiny_tinyimagenet import make_tiny_tinyimagenet


@pytest.fixture(scope="module")
def f(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    tiny_cnn(seed=1).save(root / "m.json")
    rng = np.random.default_rng(0)
    for name in ("cat.jpg", "dog.png"):
        save_image(root / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    make_tiny_tinyimagenet(root / "tin_train")
    ds = make_tiny_tinyimagenet(root / "tin", size=16, n_classes=5)
    (ds / "wnids.txt").write_text("\n".join(f"n{i:08d}" for i in range(5)) + "\n")  # tiny_cnn's classes
    (ds / "val" / "val_annotations.txt").write_text("".join(
        f"val_{i}.JPEG\tn{i % 5:08d}\t1\t2\t9\t10\n" for i in range(4)))
    return root


M = "--model {r}/m.json"
RUN = [  # the README's command table, on tiny inputs and a tiny model
    "classify {r}/cat.jpg {r}/dog.png --top 5 " + M,
    "classes cat",
    "classes tabby --model tinyimagenet --json",
    "caption {r}/cat.jpg --beam 1",
    "caption {r}/cat.jpg {r}/dog.png",
    "caption train --data synthetic:40 --hidden 8 --wordvec 4 --epochs 1 --val-images 5 --no-progress --out {r}/cap",
    "caption evaluate --data synthetic:40 --split dev --json --model {r}/cap/model.npz --max-images 5",
    "saliency {r}/cat.jpg -o {r}/sal " + M,
    "saliency {r}/cat.jpg {r}/dog.png --method smoothgrad --samples 2 -o {r}/sal2 " + M,
    "saliency {r}/cat.jpg --method ig --points 2 -o {r}/sal3 " + M,
    "saliency {r}/cat.jpg --method gradcam -o {r}/sal4 " + M,
    "saliency evaluate --data {r}/tin --n 2 --methods random,vanilla,gradcam --step 512 " + M,
    "fool {r}/cat.jpg {r}/dog.png --target 3 -o {r}/fool --max-iter 30 " + M,
    "fool --data {r}/tin --n 1 --json --max-iter 2 " + M,
    "classvis 2 -o {r}/cv --iterations 2 " + M,
    "invert {r}/cat.jpg {r}/dog.png --layer relu1 -o {r}/inv --iterations 2 " + M,
    "dream {r}/cat.jpg --layer relu2 -o {r}/dream --iterations 1 " + M,
    "cnn layers",
    "cnn evaluate --data {r}/tin --json " + M,
    "cnn train --data {r}/tin_train --out {r}/cnn --engine numpy --epochs 1 --widths 4,6",
]
PARSE = {  # long runs: they parse to their handler (and their --help works)
    "demo -o demo_out": "run_demo_command",
    "demo -o DIR --images a.jpg b.png": "run_demo_command",
    "data download coco": "run_download",
    "caption train --data flickr8k:DIR --cell lstm --hidden 512 --wordvec 256 --optimizer adam --lr 2e-3 "
    "--lr-decay 0.9 --batch-size 128 --epochs 12 --clip 5 --val-images 1000 --seed 0 --out runs/captioner": "run_train",
    "caption train --data coco:DIR --out runs/x --resume": "run_train",
    "caption evaluate --data flickr8k:PATH --split dev --json": "run_evaluate",
    "cnn evaluate --data PATH --json": "run_evaluate",
    "cnn train --data DIR --out runs/cnn --epochs-schedule 32:18,48:4,64:2 --stop-after 4 --threads 2": "run_train",
    "cnn train --data DIR --out runs/cnn2 --epochs-schedule 32:7,48:2,64:1 --init-from runs/cnn/checkpoint.pt "
    "--threads 2": "run_train",
    "saliency evaluate --data DIR": "evaluate",
    "fool --data DIR --n 100 --json": "fool",
}


@pytest.mark.parametrize("line", RUN)
def test_documented_command_runs(line, f, capsys):
    assert main(shlex.split(line.format(r=f))) == 0, capsys.readouterr().err


@pytest.mark.parametrize("line", sorted(PARSE))
def test_documented_command_parses(line, capsys):
    parser = build_parser()
    args = parser.parse_args(expand_default_subcommand(shlex.split(line), parser))
    assert PARSE[line] in args.func.__name__
    words = [w for w in shlex.split(line) if not w.startswith("-")][:2]
    with pytest.raises(SystemExit) as e:
        parser.parse_args(expand_default_subcommand([w for w in words if w.isidentifier()] + ["--help"], parser))
    assert e.value.code == 0 and "usage: gradscope" in capsys.readouterr().out


def test_short_forms_are_the_subcommands():
    parser = build_parser()
    assert expand_default_subcommand(["caption", "a.jpg"], parser) == ["caption", "image", "a.jpg"]
    assert expand_default_subcommand(["caption", "--beam", "1", "a.jpg"], parser)[:2] == ["caption", "image"]
    assert expand_default_subcommand(["caption", "train", "--out", "x"], parser)[1] == "train"
    assert expand_default_subcommand(["caption", "--help"], parser) == ["caption", "--help"]
