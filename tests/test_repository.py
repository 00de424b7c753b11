"""The repository stands on its own: a clone has everything its README, docs and
requirements point at (nothing outside it, such as a sibling `shared` folder)."""
from __future__ import annotations

import subprocess

from tests.conftest import ROOT

OUTSIDE = "../" + "shared"  # spelled apart so this file does not match itself


def test_no_tracked_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pointing = [f for f in files if (ROOT / f).is_file() and OUTSIDE in (ROOT / f).read_text(errors="ignore")]
    assert pointing == []


def test_the_readme_names_the_python_it_needs_and_its_contract():
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11" in readme and "docs/PRODUCT.md" in readme and (ROOT / "docs" / "PRODUCT.md").exists()
    assert "sandbox/outbox" in readme.split("say \"flat tire", 1)[1][:800]  # where the curl example's replies are
