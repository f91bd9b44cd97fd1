"""Which chapters did the site build fail to execute? `python tools/executed.py [CACHE_DIR]`.

`python tools/executed.py --times [CACHE_DIR]` prints instead how long each chapter's current code
took to execute in the cache, slowest first, with the total: CI ends with it, so that the part of
its log that people read says where the time goes.

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


def matching_record(cache, path: Path):
    """`cache`'s record of an execution of `path`'s current code, or None where it holds none."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    if "kernelspec" in nb.metadata:  # the site build maps every kernel name to python3
        nb.metadata.kernelspec["name"] = "python3"
    try:
        return cache.match_cache_notebook(nb)
    except KeyError:
        return None


def _records(notebooks: list[Path], cache_dir: Path) -> dict:
    """Each notebook's record in `cache_dir` for its current code, or None."""
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_dir))
    return {path: matching_record(cache, path) for path in notebooks}


def unexecuted(notebooks: list[Path], cache_dir: Path) -> list[Path]:
    """The notebooks of which `cache_dir` holds no execution of their current code."""
    return [path for path, record in _records(notebooks, cache_dir).items() if record is None]


def execution_seconds(notebooks: list[Path], cache_dir: Path) -> dict[Path, float | None]:
    """For each notebook, the seconds its current code took in `cache_dir`'s execution of it; None
    where the cache holds no execution of that code (or no time for it)."""
    return {path: None if record is None else record.data.get("execution_seconds")
            for path, record in _records(notebooks, cache_dir).items()}


def print_times(seconds: dict[Path, float | None]) -> None:
    """The chapters' execution times, slowest first, and their sum."""
    timed = sorted(((s, p) for p, s in seconds.items() if s is not None), key=lambda sp: -sp[0])
    print("chapter execution times in this build (s), slowest first:")
    for s, p in timed:
        print(f"  {s:7.1f}  {p.stem}")
    for p in (p for p, s in seconds.items() if s is None):
        print(f"  {'-':>7}  {p.stem} (no time: not executed in this cache)")
    print(f"  {sum(s for s, _ in timed):7.1f}  in all ({len(timed)} notebooks)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    times = "--times" in argv
    argv = [a for a in argv if a != "--times"]
    cache_dir = Path(argv[0]) if argv else ROOT / "_build" / ".jupyter_cache"
    chapters = sorted((ROOT / "book").glob("*.ipynb"))
    if times:
        print_times(execution_seconds(chapters, cache_dir))
        return 0
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
