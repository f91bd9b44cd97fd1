"""Check the book on a CUDA machine in one go: `python tools/gpu_check.py [--budget SECONDS] [--out DIR]`.

CI has no GPU, so the CUDA branches run only here: tests/test_gpu.py, the benchmark
(`python -m mingpt.benchmark --compile`), then the chapters, each top to bottom in a fresh
kernel, the most GPU-specific chapters first, until the time budget is spent. Prints one summary table at the end; logs go to --out.
Needs what tools/test.sh needs (nbclient, ipykernel, pytest) in the current Python.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Chapters with GPU-only settings or code paths first; every other chapter after, in book order, as time allows.
FIRST = ["12_fast_generation", "13_fast_training", "14_training", "07_sampling", "06_trainer", "11_gpt2_weights", "05_gpt", "10_bpe",
         "08_addition"]


def run_step(name: str, cmd: list[str], timeout: float, log: Path) -> tuple[str, float]:
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        status, text = ("ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"), proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        status = f"TIMEOUT after {timeout:.0f} s"
    seconds = time.time() - start
    log.write_text(text)
    print(f"--- {name}: {status} in {seconds:.1f} s (log {log.name})", flush=True)
    print(text[-3000:], flush=True)
    return status, seconds


def execute_chapter(path: str, timeout: float) -> None:
    """Run one chapter in a fresh kernel, in book/, as a reader would, and print what it printed."""
    from notebooks import execute  # tools/notebooks.py, beside this script

    nb = execute(Path(path), int(timeout))
    for cell in nb.cells:  # the chapter's own prints: what it measured on this machine
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                print(out["text"], end="")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=540, help="seconds for everything")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "gpu_check")
    args = ap.parse_args()
    deadline = time.time() + args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check (tests/test_gpu.py skips on CPU)")
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, Python {sys.version.split()[0]}", flush=True)
    results = []
    py = sys.executable
    steps = [("tests/test_gpu.py", [py, "-m", "pytest", "tests/test_gpu.py", "-v", "-p", "no:cacheprovider"], 240),
             ("benchmark --compile", [py, "-m", "mingpt.benchmark", "--compile"], 240)]
    from notebooks import chapters  # tools/notebooks.py, beside this script

    rest = [p.stem for p in chapters(sorted((ROOT / "book").glob("*.ipynb"))) if p.stem not in FIRST]
    steps += [(f"book/{c}.ipynb", [py, __file__, "--chapter", f"book/{c}.ipynb"], 300) for c in FIRST + rest]
    for name, cmd, limit in steps:
        left = deadline - time.time()
        if left < 20:
            results.append((name, "not run: time budget spent", 0.0))
            continue
        log = args.out / (name.replace("/", "_").replace(" ", "_") + ".log")
        status, seconds = run_step(name, cmd, min(limit, left - 5), log)
        results.append((name, status, seconds))
    print("\nsummary")
    for name, status, seconds in results:
        print(f"{name:<32} {status:<32} {seconds:7.1f} s")
    return 0 if all(s == "ok" for _, s, _ in results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--chapter":
        execute_chapter(sys.argv[2], timeout=600)
        sys.exit(0)
    sys.exit(main())
