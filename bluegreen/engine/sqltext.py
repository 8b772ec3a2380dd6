"""SQL text split as SQLite's lexer splits it, as far as bluegreen needs: comments and string/blob
literals are whole tokens (a name inside them is not a name), "double", [bracket] and `backtick`
quoted names and bare words are identifiers, :name @name $name are parameters. One tokenizer for
the reach check on migrations (namedsql) and for reading index definitions (capture)."""

from __future__ import annotations

import re

TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
      | (?P<literal>[xX]?'(?:[^']|'')*(?:'|\Z))
      | (?P<double>"(?:[^"]|"")*(?:"|\Z))
      | (?P<bracket>\[[^\]]*(?:\]|\Z))
      | (?P<backtick>`(?:[^`]|``)*(?:`|\Z))
      | (?P<parameter>[:@$?][\w$]*)
      | (?P<number>\d[\w.]*)
      | (?P<word>(?:[^\W\d]|[^\x00-\x7f])(?:[\w$]|[^\x00-\x7f])*)
      | (?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)


def spans(sql: str) -> list[re.Match]:
    """The tokens with their place in the text, without whitespace and comments."""
    return [m for m in TOKEN.finditer(sql) if m.lastgroup != "comment" and m.group().strip()]
