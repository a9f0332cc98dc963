"""The wheel ships the grammar inside the package and no bare top-level `backends`/`grammar`."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_grammar_under_ebmlang_only(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("ebmlang-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ebmlang/grammar/ebm.lark" in names
    assert "ebmlang/backends/torch_backend.py" in names and "ebmlang/backends/jax_backend.py" in names
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"ebmlang", "ebmlang-0.1.0.dist-info"}, top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ebm = ebmlang.cli:main" in text and "[ebmlang.backends]" in text
