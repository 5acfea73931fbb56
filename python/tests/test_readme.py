"""The README's test command is the one CI runs, and it runs this suite."""

import os

from conftest import ROOT


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = f.read().split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(lines) == 2
    test_command = lines[1]
    assert "cargo test --release --workspace" in test_command and "pytest" in test_command
    assert "python/tests" in test_command
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert test_command in f.read().splitlines()
