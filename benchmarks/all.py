"""Every speed target of gradscope against torch in one run: runs each benchmark of this
folder in turn (each in its own process, since BLAS threads and kernels are fixed when
NumPy loads), shows their output, then one table of the ratios gradscope / torch.

    python benchmarks/all.py [--threads N] [--blas-core env|auto|NAME] [--quick]

--threads overrides every benchmark's default (2 for the CNN, the recurrent layers and
the attribution methods; 1 for the captioning step and EfficientNet-Lite0, as in their
targets). --quick runs fewer repeats (a smoke run, not a measurement).
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (script, arguments, [(label of a ratio line in its output, the table's row name)])
CASES = [
    ("cnn.py", [], [("ratio", "shipped CNN, forward + input gradient, batch 64")]),
    ("recurrent.py", [], [("LSTM N=256", "lstm_forward + lstm_backward, N256 T32 D512 H1024"),
                          ("LSTM N=128", "lstm_forward + lstm_backward, N128 T16 D256 H512")]),
    ("captioning.py", [], [("batch   25", "captioning train step, batch 25"),
                           ("batch  128", "captioning train step, batch 128")]),
    ("attribution.py", [], [("smoothgrad", "SmoothGrad, batch 16"),
                            ("integrated_gradients", "integrated gradients, batch 16")]),
    ("efficientnet.py", [], [("ratio", "EfficientNet-Lite0, forward + input gradient, batch 8")]),
]
QUICK = {"cnn.py": ["--repeats", "2", "--batch", "8"], "recurrent.py": ["--repeats", "2", "--shapes", "captioning"],
         "captioning.py": ["--rounds", "1", "--batches", "25"], "attribution.py": ["--repeats", "1", "--batch", "2"],
         "efficientnet.py": ["--repeats", "2", "--batch", "1"]}
RATIO = re.compile(r"ratio \S+ / torch: wall ([\d.]+) \(min/min ([\d.]+)\), cpu ([\d.]+) \(target <= ([^)]+)\)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="threads for every benchmark (default: each its own)")
    p.add_argument("--blas-core", default="env", help="OpenBLAS kernel set, passed on (see _setup.py)")
    p.add_argument("--quick", action="store_true", help="few repeats and small batches: a smoke run")
    return p.parse_args(argv)


def ratios(output, labels):
    """[(row name, wall, min/min, cpu, target)] for each label: the first ratio line at or
    after the first line containing the label."""
    lines, rows = output.splitlines(), []
    for label, row in labels:
        start = next((i for i, line in enumerate(lines) if label in line), None)
        hit = None if start is None else next((RATIO.search(line) for line in lines[start:] if RATIO.search(line)),
                                              None)
        if hit:
            rows.append((row, *hit.groups()))
    return rows


def main(argv=None):
    args = parse_args(argv)
    table, failed = [], []
    for script, extra, labels in CASES:
        cmd = [sys.executable, os.path.join(HERE, script), "--blas-core", args.blas_core, *extra]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        cmd += QUICK[script] if args.quick else []
        print(f"\n$ {' '.join(cmd[1:])}", flush=True)
        run = subprocess.run(cmd, capture_output=True, text=True)
        print(run.stdout + run.stderr, end="", flush=True)
        found = ratios(run.stdout, labels)
        if run.returncode or (len(found) < len(labels) and not args.quick):
            failed.append(script)
        table += found
    width = max(len(row[0]) for row in table) if table else 10
    print("\nquick run: smaller batches and shapes than the rows name; not a measurement" if args.quick else "")
    print(f"{'workload':<{width}}  wall  min/min   cpu  target")
    for name, wall, low, cpu, target in table:
        print(f"{name:<{width}}  {wall:>4}  {low:>7}  {cpu:>4}  <= {target}")
    if failed:
        print(f"did not report every ratio: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
