"""Shell commands in the documentation's code blocks, as a person would copy them.

A command is one line of a ```bash / ```sh / ```shell / ```console block (continuation lines joined), its
trailing comment and a leading `sudo ` / `$ ` removed. A comment containing `illustrative` exempts the
line; a block whose first line is such a comment exempts the whole block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_BLOCK = re.compile(r"^```(bash|sh|shell|console)\s*\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Command:
    document: str
    line: int
    text: str
    illustrative: bool


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment): the comment starts at a `#` after whitespace, outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def shell_commands(document: Path) -> list[Command]:
    text = document.read_text(encoding="utf-8")
    name = str(document.relative_to(ROOT)) if document.is_relative_to(ROOT) else document.name
    found: list[Command] = []
    for block in SHELL_BLOCK.finditer(text):
        first_line = text[: block.start(2)].count("\n") + 1
        lines = block.group(2).splitlines()
        whole_block = bool(lines) and lines[0].lstrip().startswith("#") and "illustrative" in lines[0]
        pending, start = "", 0
        for offset, raw in enumerate(lines):
            if not pending:
                start = first_line + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            code, comment = split_comment(pending + raw)
            pending = ""
            code = re.sub(r"^\s*(\$\s+)?(sudo\s+)?", "", code).strip()
            if code:
                found.append(Command(name, start, code, whole_block or "illustrative" in comment))
    return found
