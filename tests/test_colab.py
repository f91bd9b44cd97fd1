"""Colab: every chapter's install cell is a no-op outside Colab, and in Colab its pip line resolves
without replacing torch (checked by installing a local build with the cell's own pip arguments
into a fresh virtualenv that already has torch)."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import types
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402

CHAPTER = ROOT / "book" / "01_data.ipynb"
TORCH = "torch==2.13.0"  # the pinned version: it lies on this machine's disk (a plain `torch` would not)


def install_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c.get("id") == notebooks.INSTALL_ID]
    assert len(cells) == 1, f"{path.name}: expected one install cell, run `python tools/notebooks.py colab`"
    return "".join(cells[0]["source"])


def pip_args(source: str) -> list:
    """The argument list the cell passes to subprocess.run, `sys.executable` kept as a marker."""
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "run"]
    assert len(calls) == 1, "the install cell makes exactly one subprocess.run call"
    return [sys.executable if isinstance(e, ast.Attribute) else ast.literal_eval(e) for e in calls[0].args[0].elts]


def run_cell(source: str, in_colab: bool, monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append((args, kw)))
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_install_cell_does_nothing_outside_colab(monkeypatch):
    assert run_cell(install_cell(CHAPTER), in_colab=False, monkeypatch=monkeypatch) == []


def test_install_cell_in_colab_installs_the_branch_the_button_opens_and_leaves_torch_alone(monkeypatch):
    [(args, kw)] = run_cell(install_cell(CHAPTER), in_colab=True, monkeypatch=monkeypatch)
    repo, branch = notebooks.repository()
    assert args[:4] == [sys.executable, "-m", "pip", "install"] and kw == {"check": True}
    assert args[-1] == f"mingpt-book @ git+https://github.com/{repo}@{branch}"
    assert "-U" not in args and "--upgrade" not in args and "--force-reinstall" not in args
    assert not any(re.match(r"(torch|numpy|pandas)\b", a) for a in args), "never pin Colab's torch or numpy"
    assert "@v" not in args[-1], "a version tag would install other code than the chapter was written with"


def test_every_chapter_has_the_same_install_cell_and_its_own_badge():
    repo, branch = notebooks.repository()
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not any(c.get("id") == notebooks.BADGE_ID for c in nb["cells"]):
            continue  # `notebooks.py check` names such chapters
        assert install_cell(path) == install_cell(CHAPTER), path.name
        badge = "".join(next(c for c in nb["cells"] if c.get("id") == notebooks.BADGE_ID)["source"])
        assert f"https://colab.research.google.com/github/{repo}/blob/{branch}/book/{path.name})" in badge
        assert nb["cells"][0]["source"][0].startswith("# "), "the title stays the first cell"


def test_colab_command_is_idempotent_and_keeps_outputs(tmp_path):
    nb = json.loads(CHAPTER.read_text(encoding="utf-8"))
    nb["cells"] = [c for c in nb["cells"] if not notebooks.is_colab_cell(c)]  # a new chapter, without them
    path = tmp_path / "99_new.ipynb"
    path.write_text(notebooks.dumps(nb), encoding="utf-8")
    assert notebooks.main(["check", str(path)]) == 1
    assert notebooks.main(["colab", str(path)]) == 0
    assert notebooks.main(["check", str(path)]) == 0
    fresh = json.loads(path.read_text(encoding="utf-8"))
    assert [c.get("id") for c in fresh["cells"][1:3]] == [notebooks.BADGE_ID, notebooks.INSTALL_ID]
    assert "accelerator" not in fresh["metadata"]  # chapter 1's code trains nothing

    # a working copy with outputs: they stay, and a second run changes nothing
    out = {"output_type": "stream", "name": "stdout", "text": "kept\n"}
    code = next(c for c in fresh["cells"] if c["cell_type"] == "code" and c.get("id") != notebooks.INSTALL_ID)
    code["outputs"] = [out]
    fresh["metadata"]["accelerator"] = "TPU"  # stale metadata is corrected
    path.write_text(notebooks.dumps(fresh), encoding="utf-8")
    assert notebooks.main(["colab", str(path)]) == 0
    once = path.read_text(encoding="utf-8")
    assert notebooks.main(["colab", str(path)]) == 0 and path.read_text(encoding="utf-8") == once
    again = json.loads(once)
    assert next(c for c in again["cells"] if c.get("id") == code.get("id"))["outputs"] == [out]
    assert "accelerator" not in again["metadata"]


def test_training_chapters_ask_colab_for_a_gpu():
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if path.name[:2] in notebooks.GPU_CHAPTERS and any(c.get("id") == notebooks.BADGE_ID for c in nb["cells"]):
            assert nb["metadata"]["accelerator"] == "GPU" and nb["metadata"]["colab"]["gpuType"], path.name


def registries_unreachable() -> str | None:
    """Why pip cannot reach its package index, or None when it can."""
    try:
        urllib.request.urlopen("https://pypi.org/simple/tqdm/", timeout=10).close()
        return None
    except OSError as e:
        return f"package registries are unreachable ({e}); the install check needs numpy and tqdm from one"


def test_install_line_resolves_in_a_fresh_venv_with_torch(tmp_path):
    # 1. build the package from the repository's files, as pip would from the git URL
    src = tmp_path / "src"
    shutil.copytree(ROOT / "mingpt", src / "mingpt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("mingpt_book-*.whl")

    # 2. a fresh virtualenv that already has torch, as Colab has
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")

    def pip(*args):
        res = subprocess.run([py, "-m", "pip", *args], env=env, cwd=tmp_path, capture_output=True, text=True)
        if res.returncode != 0:
            reason = registries_unreachable()
            if reason:
                pytest.skip(reason)
            pytest.fail(f"pip {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")

    pip("install", "--quiet", TORCH)

    def in_venv(code):
        return subprocess.run([py, "-c", code], env=env, cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    torch_before = in_venv("import torch; print(torch.__version__)")

    # 3. the cell's own pip arguments, with the git URL replaced by the local build
    args = pip_args(install_cell(CHAPTER))
    assert args[:3] == [sys.executable, "-m", "pip"]
    requirement = args[-1]
    assert requirement.startswith("mingpt-book @ git+https://")
    pip(*args[3:-1], f"mingpt-book @ {wheel.as_uri()}")

    # 4. torch untouched, every module importable, without matplotlib or ipywidgets
    assert in_venv("import torch; print(torch.__version__)") == torch_before
    modules = sorted(p.stem for p in (ROOT / "mingpt").glob("*.py") if p.stem != "__init__")
    imported = in_venv(
        "import importlib, pkgutil, mingpt\n"
        "names = sorted(m.name for m in pkgutil.iter_modules(mingpt.__path__))\n"
        "for n in names: importlib.import_module('mingpt.' + n)\n"
        "import sys; assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules\n"
        "print(mingpt.__file__); print(' '.join(names))")
    location, names = imported.splitlines()
    assert location.startswith(str(venv)), "imported the installed package, not the repository's"
    assert names.split() == modules
