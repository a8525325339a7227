"""One upstream JSON value (an SVIT array element, an InternVL-SA-1B-Caption line) decoded, or why it cannot be.

Beyond what ``json.loads`` rejects, two valid-looking values cannot become rows and are reported here, so that they
are bad records of their file instead of errors that stop a whole unit later: nesting deeper than Python's recursion
limit (``RecursionError``), and a lone surrogate escape such as ``"\\ud83d"``, which decodes to a string UTF-8
(and so Arrow) cannot hold.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Union

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(raw: Union[bytes, str]) -> tuple[Any, Optional[str]]:
    """``(value, None)``, or ``(None, why)`` when ``raw`` is not a JSON value a row can hold."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        return None, f"invalid JSON: {err}"
    encoded = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _SURROGATE_ESCAPE.search(encoded) and _has_lone_surrogate(value):
        return None, "invalid JSON for UTF-8: a string holds a lone surrogate escape (\\ud800-\\udfff)"
    return value, None


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
