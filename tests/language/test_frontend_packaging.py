"""The wheel ships the grammar inside the package and no bare top-level `backends`/`grammar`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_grammar_under_ebmlang_only(tmp_path):
    # Built from a copy without build/: setuptools reuses an in-tree build/lib, where a
    # module that has since moved would linger and ship.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", "showcase", "bench_out"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("ebmlang-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ebmlang/grammar/ebm.lark" in names
    assert "ebmlang/backends/torch_backend.py" in names and "ebmlang/backends/jax_backend.py" in names
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"ebmlang", "ebmlang-0.1.0.dist-info"}, top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ebm = ebmlang.cli:main" in text and "[ebmlang.backends]" in text

    shipped = {n for n in names if n.endswith(".py")}
    package = ROOT / "ebmlang"
    modules = {"ebmlang/" + Path(folder, name).relative_to(package).as_posix()
               for folder, _, files in os.walk(package, followlinks=True) for name in files if name.endswith(".py")}
    assert shipped == modules, (sorted(shipped - modules), sorted(modules - shipped))
