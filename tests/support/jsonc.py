"""Read the JSON-with-comments of Azure's documents: drop ``//`` comments and trailing commas."""

from __future__ import annotations

import json
import re
from typing import Any

_COMMENT = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*')
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def loads(text: str) -> Any:
    # The documents were web pages: their indentation holds non-breaking spaces.
    text = text.replace("\u00a0", " ")
    without_comments = _COMMENT.sub(lambda m: m.group(1) or "", text)
    return json.loads(_TRAILING_COMMA.sub(r"\1", without_comments))
