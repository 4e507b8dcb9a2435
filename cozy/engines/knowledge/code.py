"""Which files are which format, and how each programming language declares symbols."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MARKDOWN = {".md", ".markdown", ".mdx", ".mkd"}
RST = {".rst", ".rest"}
HTML = {".html", ".htm", ".xhtml"}
TEXT = {".txt", ".text", ".log", ".csv", ".tsv", ".org", ".adoc", ".tex", ".ini", ".cfg"}
DATA = {".json", ".yaml", ".yml", ".toml", ".xml"}

LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".cs": "csharp",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".lua": "lua",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".sql": "sql",
    ".r": "r",
    ".jl": "julia",
    ".ex": "elixir",
    ".exs": "elixir",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".dart": "dart",
}

_C_FAMILY = (
    r"^\s*(?:(?:public|private|protected|internal|static|final|abstract|override|virtual|"
    r"async|export|default|sealed|open|inline|extern|const|unsafe|pub(?:\([\w:]+\))?)\s+)*"
)

SYMBOLS: dict[str, str] = {
    "python": r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)",
    "javascript": _C_FAMILY + r"(?:function\*?|class)\s+([A-Za-z_$][\w$]*)"
    r"|^\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?"
    r"(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>",
    "typescript": _C_FAMILY + r"(?:function\*?|class|interface|enum|type)\s+([A-Za-z_$][\w$]*)"
    r"|^\s*(?:export\s+)?(?:const|let)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?\(",
    "go": r"^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)|^type\s+([A-Za-z_]\w*)",
    "rust": _C_FAMILY + r"(?:fn|struct|enum|trait|impl|mod|union)\s+(?:<[^>]*>\s*)?([A-Za-z_]\w*)",
    "java": _C_FAMILY + r"(?:class|interface|enum|record)\s+([A-Za-z_]\w*)"
    r"|^\s+(?:(?:public|private|protected|static|final|synchronized|abstract)\s+)+"
    r"[\w<>\[\], ]+\s+([A-Za-z_]\w*)\s*\(",
    "kotlin": _C_FAMILY + r"(?:fun|class|interface|object|enum class|data class)\s+([A-Za-z_]\w*)",
    "scala": _C_FAMILY + r"(?:def|class|object|trait)\s+([A-Za-z_]\w*)",
    "csharp": _C_FAMILY + r"(?:class|interface|struct|enum|record)\s+([A-Za-z_]\w*)"
    r"|^\s+(?:(?:public|private|protected|internal|static|async|override|virtual)\s+)+"
    r"[\w<>\[\], ]+\s+([A-Za-z_]\w*)\s*\(",
    "c": r"^(?:static\s+|inline\s+|extern\s+)*[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\([^;]*$"
    r"|^(?:typedef\s+)?(?:struct|enum|union)\s+([A-Za-z_]\w*)",
    "cpp": r"^(?:class|struct|namespace|enum(?:\s+class)?)\s+([A-Za-z_]\w*)"
    r"|^[A-Za-z_][\w:\s\*&<>]*?\b([A-Za-z_][\w:]*)\s*\([^;]*$",
    "ruby": r"^\s*(?:def|class|module)\s+(?:self\.)?([A-Za-z_]\w*[?!]?)",
    "php": r"^\s*(?:(?:public|private|protected|static|abstract|final)\s+)*"
    r"(?:function|class|interface|trait)\s+([A-Za-z_]\w*)",
    "swift": _C_FAMILY + r"(?:func|class|struct|enum|protocol|extension)\s+([A-Za-z_]\w*)",
    "lua": r"^\s*(?:local\s+)?function\s+([\w.:]+)",
    "shell": r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{?",
    "sql": r"^\s*create\s+(?:or\s+replace\s+)?(?:table|view|function|procedure|index)\s+"
    r"(?:if\s+not\s+exists\s+)?([\w.\"]+)",
    "r": r"^\s*([A-Za-z_.][\w.]*)\s*<-\s*function",
    "julia": r"^\s*(?:function|struct|module|macro)\s+([A-Za-z_]\w*)",
    "elixir": r"^\s*(?:def|defp|defmodule|defmacro)\s+([A-Za-z_][\w.?!]*)",
    "haskell": r"^([a-z_]\w*)\s*::",
    "ocaml": r"^\s*let\s+(?:rec\s+)?([a-z_]\w*)",
    "dart": r"^\s*(?:class|enum|mixin|extension)\s+([A-Za-z_]\w*)",
}


@cache
def symbol_pattern(language: str) -> re.Pattern[str] | None:
    source = SYMBOLS.get(language)
    return re.compile(source, re.IGNORECASE if language == "sql" else 0) if source else None


def kind_of(path: Path) -> str:
    """The document kind from the file name: markdown, rst, html, pdf, docx, code:<lang>, text."""
    suffix = path.suffix.lower()
    if suffix in MARKDOWN:
        return "markdown"
    if suffix in RST:
        return "rst"
    if suffix in HTML:
        return "html"
    if suffix == ".pdf":
        return "pdf"
    if suffix == ".docx":
        return "docx"
    if suffix in LANGUAGES:
        return "code:" + LANGUAGES[suffix]
    if path.name in ("Makefile", "Dockerfile", "Justfile"):
        return "code:shell"
    return "text"
