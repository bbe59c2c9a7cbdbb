"""`gradscope data ...`: fetch data sets.

    gradscope data download coco [--dir DIR] [--url URL] [--sha256 HEX]
"""
from __future__ import annotations

import os

from gradscope.cli.output import output_folder
from gradscope.cli.progress import Progress
from gradscope.data.download import COCO_URL, default_data_dir, download_coco

DATASETS = {"coco": COCO_URL}


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="download data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    dl = sub.add_parser("download", help="download and unpack a data set (resumes a partial download)",
                        description="Download (over https) and unpack a data set. An interrupted download resumes "
                                    "on the next run. The archive's sha256 is verified against --sha256 or the "
                                    "digest pinned in gradscope; where none is known, it is printed and stored "
                                    "next to the archive, and later runs check it.")
    dl.add_argument("dataset", choices=sorted(DATASETS), help="coco: the course's COCO captioning features")
    dl.add_argument("--dir", default=None, help=f"where to put it (default: $GRADSCOPE_DATA or {default_data_dir()})")
    dl.add_argument("--url", default=None, help="download from this https URL instead (a mirror) (default: the official URL)")
    dl.add_argument("--sha256", default=None, metavar="HEX",
                    help="the archive's expected sha256 digest (default: gradscope's pinned digest, else the one "
                         "recorded at the first download)")
    dl.add_argument("--remove-archive", action="store_true", help="delete the zip after unpacking")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    dl.set_defaults(func=run_download)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def run_download(args) -> int:
    url = args.url or DATASETS[args.dataset]
    folder = args.dir or default_data_dir()
    partial = lambda f: any(n.endswith(".part") for n in os.listdir(f))  # noqa: E731 - kept for resuming
    bar = Progress(f"download {url.rsplit('/', 1)[-1]}", unit="MB", enabled=not args.no_progress)
    with output_folder(folder, "--dir", keep=partial), bar:
        result, target = download_coco(folder, url=url, sha256=args.sha256, keep_archive=not args.remove_archive,
                                       progress=lambda done, total: bar.update(
                                           done >> 20, None if total is None else total >> 20))
    if not result.downloaded:
        print(f"archive already present: {result.path}")
    elif result.resumed:
        print(f"resumed and finished the download: {result.path}")
    if result.checksum == "recorded":
        print(f"sha256 {result.sha256} (no published checksum; stored in {result.path}.sha256 "
              f"and checked on later runs)")
    else:
        print(f"sha256 {result.sha256} verified")
    print(f"COCO captioning data in {target}")
    return 0
