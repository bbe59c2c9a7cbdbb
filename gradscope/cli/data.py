"""`gradscope data ...`: fetch data sets.

    gradscope data download coco [--dir DIR]
"""
from __future__ import annotations

import sys

from gradscope.data.download import COCO_URL, default_data_dir, download_coco

DATASETS = {"coco": COCO_URL}


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="download data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    dl = sub.add_parser("download", help="download and unpack a data set (resumes a partial download)",
                        description="Download and unpack a data set. An interrupted download resumes "
                                    "on the next run. When no checksum is published for the archive, "
                                    "its sha256 is printed and stored next to it, and later runs check it.")
    dl.add_argument("dataset", choices=sorted(DATASETS), help="coco: the course's COCO captioning features")
    dl.add_argument("--dir", default=None, help=f"where to put it (default: $GRADSCOPE_DATA or {default_data_dir()})")
    dl.add_argument("--url", default=None, help="download from this URL instead (a mirror)")
    dl.add_argument("--remove-archive", action="store_true", help="delete the zip after unpacking")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.set_defaults(func=run_download)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def run_download(args) -> int:
    url = args.url or DATASETS[args.dataset]
    bar = None if args.no_progress else _ProgressBar(url)
    try:
        result, folder = download_coco(args.dir, url=url, progress=bar, keep_archive=not args.remove_archive)
    finally:
        if bar is not None:
            bar.close()
    if not result.downloaded:
        print(f"archive already present: {result.path}")
    elif result.resumed:
        print(f"resumed and finished the download: {result.path}")
    if result.checksum == "recorded":
        print(f"sha256 {result.sha256} (no published checksum; stored in {result.path}.sha256 "
              f"and checked on later runs)")
    else:
        print(f"sha256 {result.sha256} verified")
    print(f"COCO captioning data in {folder}")
    return 0


class _ProgressBar:
    """A tqdm bar driven by download_file's progress(done, total) callback."""

    def __init__(self, url):
        self.url = url
        self.bar = None

    def __call__(self, done, total):
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.url.rsplit("/", 1)[-1], file=sys.stderr)
        else:
            self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
