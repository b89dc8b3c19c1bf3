"""Text formats of Ollama's CLI: `format.HumanBytes`/`HumanNumber`/`HumanTime`, Go's `%g`/`%v`, and the
borderless tables `ollama list`, `ps` and `show` print (olekukonko/tablewriter with 4-space padding).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

_UNITS = ((1000**4, "TB"), (1000**3, "GB"), (1000**2, "MB"), (1000, "KB"))
TABLE_PADDING = "    "
MAX_COL_WIDTH = 30  # tablewriter's default wrap width
_WRAP_PENALTY = 100_000


def human_bytes(size: int) -> str:
    """Decimal units, one decimal only below 10 and only when not whole: `4.7 GB`, `98 MB`, `512 B`."""
    units = [(unit_size, unit) for unit_size, unit in _UNITS if size >= unit_size]
    if not units:
        return f"{size} B"
    value, unit = size / units[0][0], units[0][1]
    if value >= 10 or value == math.trunc(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def human_duration(seconds_total: float) -> str:
    """`Less than a second`, `5 seconds`, `About a minute`, `4 minutes`, `About an hour`, `2 weeks`."""
    seconds = math.trunc(seconds_total)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = math.trunc(seconds_total / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds_total / 3600 + 0.5)  # Go's math.Round for positive values
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{math.trunc(seconds_total / 3600 / 24 / 365)} years"


def human_time(when: datetime | None, zero: str, now: datetime | None = None) -> str:
    """`2 weeks ago`, `4 minutes from now`, `Forever` (over 20 years ahead), `zero` when unknown."""
    if when is None:
        return zero
    now = now or datetime.now(UTC)
    delta = (now - when).total_seconds()
    if _go_div(_go_div(math.trunc(delta / 3600), 24), 365) < -20:
        return "Forever"
    if delta < 0:
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from the server; None for missing, unparsable or Go's zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed.year <= 1 else parsed


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a positive finite float and the decimal point position."""
    _, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent
    stripped = text.lstrip("0")
    point -= len(text) - len(stripped)
    stripped = stripped.rstrip("0")
    return (stripped or "0"), point


def go_float(value: float, verb: str = "g") -> str:
    """Go's `%g` (also `%v`) and `strconv.FormatFloat(v, 'f', -1, 64)` (`verb="f"`) for a float64."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _shortest_digits(abs(value))
    exponent = point - 1
    if verb == "g" and (exponent < -4 or exponent >= 6):  # shortest %g: exponent form from 1e+06
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_value(value: object) -> str:
    """Go's `%v` of a value decoded from JSON into `any` (numbers are float64)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(float(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def display_width(text: str) -> int:
    """Terminal cells of `text` (wide East Asian characters count 2, combining marks 0)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _wrap_words(words: list[str], limit: int) -> list[list[str]]:
    """tablewriter's WrapWords: minimum-raggedness line breaking (dynamic programming)."""
    n = len(words)
    widths = [display_width(w) for w in words]
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = widths[i]
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + 1 + widths[j]
    breaks = [0] * n
    cost = [2**31 - 1] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= limit:
            cost[i], breaks[i] = 0, n
            continue
        for j in range(i + 1, n):
            gap = limit - length[i][j - 1]
            candidate = gap * gap + cost[j] + (_WRAP_PENALTY if length[i][j - 1] > limit else 0)
            if candidate < cost[i]:
                cost[i], breaks[i] = candidate, j
    lines, i = [], 0
    while i < n:
        lines.append(words[i : breaks[i]])
        i = breaks[i]
    return lines


def _cell_lines(cell: str, max_width: int) -> list[str]:
    """tablewriter's parseDimension with auto-wrap: a cell's lines, each paragraph wrapped to the width."""
    paragraphs = cell.split("\n")
    width = min(max(display_width(p) for p in paragraphs), max_width)
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        words = paragraph.replace("\n", " ").split(" ")
        limit = max([width, *(display_width(w) for w in words)])
        if i > 0:
            lines.append(" ")
        lines.extend(" ".join(line) for line in _wrap_words(words, limit))
    return lines


def render_table(
    rows: Sequence[Sequence[str]], header: Sequence[str] | None = None, col_width: int = MAX_COL_WIDTH
) -> str:
    """A borderless, left-aligned table with 4-space padding after every cell, as Ollama configures
    tablewriter: the header's last cell is followed by one space, rows may have different lengths."""
    parsed_rows = [[_cell_lines(cell, col_width) for cell in row] for row in rows]
    parsed_header = [_cell_lines(cell, col_width) for cell in header] if header else []
    widths: dict[int, int] = {}
    for row in [parsed_header, *parsed_rows]:
        for col, lines in enumerate(row):
            widths[col] = max(widths.get(col, 0), *(display_width(line) for line in lines))

    def pad(text: str, col: int) -> str:
        return text + " " * max(0, widths[col] - display_width(text))

    out: list[str] = []
    if parsed_header:
        last = len(widths) - 1
        cells = [parsed_header[col][0] if col < len(parsed_header) else "" for col in range(last + 1)]
        out.append(
            "".join(pad(c, col) + (" " if col == last else TABLE_PADDING) for col, c in enumerate(cells))
        )
    for row in parsed_rows:
        height = max((len(lines) for lines in row), default=0)
        for line_no in range(height):
            cells = [lines[line_no] if line_no < len(lines) else "  " for lines in row]
            out.append("".join(pad(c, col) + TABLE_PADDING for col, c in enumerate(cells)))
    return "".join(line + "\n" for line in out)
