"""The README stays true: its quick start, its settings table and its commands."""

import re
from pathlib import Path

from marketplace.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_is_the_two_make_commands():
    quick = README.split("## Quick start", 1)[1].split("```", 2)[1]
    assert [line.split("#")[0].strip() for line in quick.strip().splitlines()[1:]] == [
        "make run",
        "make test",
    ]


def test_every_setting_is_documented_with_its_variable():
    source = (ROOT / "marketplace" / "settings.py").read_text(encoding="utf-8")
    variables = set(re.findall(r'"""([A-Z_]+):', source))
    assert len(variables) == len(Settings.__dataclass_fields__)
    for variable in variables:
        assert f"| `{variable}` |" in README, f"{variable} is missing from the README's configuration table"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
