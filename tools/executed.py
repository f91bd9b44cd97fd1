"""Which chapters did the site build fail to execute? `python tools/executed.py [CACHE_DIR]`.

A plain `jupyter-book build` exits 0 when a cell fails: the page shows the traceback and the log
in `_build/html/reports/` says why, and nobody looks. This asks the execution cache (cache mode:
a chapter's code is cached only when it ran without an unexpected error) whether it holds an
execution of each chapter's *current* code, and exits 1, naming each chapter that has none and
its report, so that `tools/book.sh` can say it loudly at the end of every build.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def unexecuted(notebooks: list[Path], cache_dir: Path) -> list[Path]:
    """The notebooks of which `cache_dir` holds no execution of their current code."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_dir))
    missing = []
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        if "kernelspec" in nb.metadata:  # the site build maps every kernel name to python3
            nb.metadata.kernelspec["name"] = "python3"
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            missing.append(path)
    return missing


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cache_dir = Path(argv[0]) if argv else ROOT / "_build" / ".jupyter_cache"
    chapters = sorted((ROOT / "book").glob("*.ipynb"))
    failed = unexecuted(chapters, cache_dir)
    if not failed:
        print(f"every chapter executed without an error ({len(chapters)} notebooks)")
        return 0
    bar = "!" * 78
    print(f"\n{bar}\n{len(failed)} chapter(s) FAILED to execute; their pages show a traceback:", file=sys.stderr)
    for path in failed:
        report = ROOT / "_build" / "html" / "reports" / "book" / f"{path.stem}.err.log"
        where = report.relative_to(ROOT) if report.exists() else "the build's log above"
        print(f"  {path.relative_to(ROOT)}: see {where}", file=sys.stderr)
    print(bar, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
