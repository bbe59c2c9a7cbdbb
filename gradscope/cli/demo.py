"""`gradscope demo`: every part of gradscope on a few photographs, offline, into an HTML report."""
from __future__ import annotations

from gradscope.cli.args import default_of, seed_int
from gradscope.cli.output import new_output
from gradscope.cli.progress import Progress

DEFAULT_OUT = "gradscope-demo"


def register(subparsers) -> None:
    from gradscope.demo.runner import run_demo

    p = subparsers.add_parser(
        "demo", help="EfficientNet-Lite0, the captioner, the course CNN and every method on photos: an HTML report",
        description="Runs EfficientNet-Lite0, the shipped captioner, the course's TinyImageNet CNN and every "
                    "method on scikit-image's sample photos (or your own with --images) and writes index.html, "
                    "results.json and PNGs. Offline.")
    p.add_argument("-o", "--output", metavar="DIR", default=DEFAULT_OUT,
                   help=f"output folder (default ./{DEFAULT_OUT}; a non-empty one is refused unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folder's files with this run's (only a folder gradscope wrote)")
    p.add_argument("--images", nargs="+", metavar="FILE", default=None,
                   help="your own photos (default: scikit-image's chelsea, coffee, astronaut, rocket)")
    p.add_argument("--seed", type=seed_int, default=default_of(run_demo, "seed"), help="random seed (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="a few iterations per method (seconds, for a smoke test; default: the full demo)")
    p.set_defaults(func=run_demo_command)


def _progress_bar():
    """(progress callback for run_demo, Progress): one unit per section, the current
    section and its iterations shown beside it."""
    bar = Progress("demo", unit="sections")
    done = [0]

    def progress(ev):
        done[0] += ev["status"] == "done"
        step = (f"{ev['iteration']}/{ev['iterations']}" if ev.get("iterations")
                else f"step {ev['iteration']}" if ev["status"] == "iteration" else ev["status"])
        bar.update(done[0], ev["sections"], section=ev["title"], step=step)

    return progress, bar


def _print_section(section) -> None:
    print(f"== {section.title} ({section.seconds:.1f} s)")
    if section.error:
        print(f"   not shown: {section.error}")
    for line in section.summary:
        print(f"   {line}")


def run_demo_command(args) -> int:
    from gradscope.demo import run_demo

    from gradscope.modelspec import model_line, shipped_model

    progress, bar = _progress_bar()
    lite0 = shipped_model("efficientnet_lite0")
    print(model_line({"name": lite0.name, "dataset": lite0.dataset, "input_size": lite0.input_size})
          + " (then the course's TinyImageNet CNN)")
    with new_output(args.output, args.overwrite, "-o", "demo") as out, bar:
        result = run_demo(out.dir, images=args.images, seed=args.seed, progress=progress, quick=args.quick)
    for name, rec in result.results["models"].items():
        print(f"{name}: {rec['description']}" if rec["loaded"] else f"{name}: MISSING: {rec['error']}")
    for section in result.sections:
        _print_section(section)
    failed = [s.title for s in result.sections if s.error]
    if failed:
        print(f"sections not shown: {', '.join(failed)} (see the report)")
    print(f"demo finished in {result.seconds:.1f} s")
    print(f"report: {out.final_path(result.report_path)}")
    return 0
