"""README's exit code table is the one `kappa --help` prints."""

from __future__ import annotations

import re
from pathlib import Path

from app.exit_codes import rows

README = Path(__file__).parents[3] / "README.md"


def test_readme_table_equals_the_codes() -> None:
    text = README.read_text()
    section = text[text.index("### Exit codes") :].split("\n### ")[0]
    table = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, flags=re.MULTILINE)
    assert table == rows()
