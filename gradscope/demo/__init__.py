"""`gradscope demo`: the whole package end to end on real photographs, offline.

    run_demo(out_dir, images=None, seed=0, progress=None, quick=False) -> DemoResult

writes <out_dir>/index.html (a self-contained report), results.json (every number) and
images/*.png. See gradscope/demo/runner.py.
"""
from gradscope.demo.images import SAMPLE_IMAGES, DemoImage, load_demo_images
from gradscope.demo.runner import DemoResult, run_demo
from gradscope.demo.section import Section, Table, Visual
from gradscope.demo.settings import FULL, QUICK, DemoSettings

__all__ = ["run_demo", "DemoResult", "load_demo_images", "DemoImage", "SAMPLE_IMAGES", "Section", "Table",
           "Visual", "DemoSettings", "FULL", "QUICK"]
