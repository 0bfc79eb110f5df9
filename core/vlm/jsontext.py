"""The JSON value in a model answer: fences, prose, truncation and sloppy syntax.

Real VLM answers are rarely clean JSON: Qwen wraps it in ```json fences and
prose, LLaVA writes Python lists with single quotes, both leave trailing commas
and stop mid-list when the token budget runs out. This module finds the value,
keeps only the complete elements of a truncated one (a half-written number is
not a number), and leaves the syntax repairs to the `json_repair` library.
Every repair is named in the list it returns, so a caller can trust clean
answers more than repaired ones.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import json_repair


class Unparseable(ValueError):
    """An answer that cannot be read; the message says why."""


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)(```|$)", re.S)
_CLOSE = {"[": "]", "{": "}"}


def _scan(text: str, start: int) -> tuple[int | None, tuple[int, tuple[str, ...]] | None]:
    """From an opening bracket at `start`: the index after its match (None if the text
    stops first), and, for truncated text, the last place an element ended (position and
    the brackets open there) so the complete part can be closed and kept."""
    stack: list[str] = []
    in_str: str | None = None
    esc = False
    cut: tuple[int, tuple[str, ...]] | None = None
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == in_str:
                in_str = None
            continue
        if ch in "\"'":
            # A single quote opens a string only where a value may start (not "it's").
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            in_str = ch
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack:
                return i, None
            stack.pop()
            if not stack:
                return i + 1, None
            cut = (i + 1, tuple(stack))
        elif ch == "," and stack:
            cut = (i, tuple(stack))
    return None, cut


_TRAILING_COMMA = re.compile(r",\s*[\]}]")
_PY_WORDS = re.compile(r"'|\b(?:True|False|None)\b")


def _loads(s: str, repairs: list[str]) -> Any:
    """A bracketed text as a value: strict JSON, else a Python literal, else json_repair's reading.

    A Python literal (LLaVA's usual answer: single quotes, True/None, trailing
    commas) goes through `ast.literal_eval` first because it reads one exactly,
    where json_repair 0.64 keeps a stray quote in a single-quoted string that
    holds a bracket ('open[?' becomes "open[?'").
    """
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    try:
        value = ast.literal_eval(s)
        only_commas = _TRAILING_COMMA.search(s) and not _PY_WORDS.search(s)
        note = (
            "removed trailing commas"
            if only_commas
            else "read a Python literal (single quotes / True / None)"
        )
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = json_repair.loads(s, skip_json_loads=True)
        note = "repaired malformed JSON (missing or extra commas, quotes or brackets)"
    if not isinstance(value, list | dict):
        raise Unparseable(f"malformed JSON that could not be repaired: {s[:80]!r}")
    repairs.append(note)
    return value


def _from(text: str, start: int, repairs: list[str]) -> tuple[Any, int]:
    end, cut = _scan(text, start)
    if end is not None:
        return _loads(text[start:end], repairs), end
    # Truncated: keep everything up to the last complete element, close what is open there.
    if cut is None:
        raise Unparseable("the answer stops before its first complete element (truncated output)")
    pos, open_ = cut
    body = text[start:pos].rstrip().rstrip(",")
    value = _loads(body + "".join(_CLOSE[b] for b in reversed(open_)), repairs)
    repairs.append("truncated output: kept the complete elements")
    return value, len(text)


def extract_json(text: str) -> tuple[Any, list[str]]:
    """The JSON value in a model answer and the repairs needed to read it.

    Looks inside the first ```json fence if there is one, else at the first
    bracket after any prose; several top-level objects in a row become a list.
    Raises ValueError when nothing can be read.
    """
    repairs: list[str] = []
    body = text
    m = _FENCE.search(text)
    if m and ("[" in m.group(2) or "{" in m.group(2)):
        body = m.group(2)
        if text[: m.start()].strip() or text[m.end() :].strip():
            repairs.append("ignored prose around the fenced JSON")
        if not m.group(3):
            repairs.append("unterminated code fence")
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        raise Unparseable("no JSON list or object in the answer")
    start = min(starts)
    if body[:start].strip() and not m:
        repairs.append("ignored prose before the JSON")
    value, end = _from(body, start, repairs)
    more = []
    rest = body[end:]
    while isinstance(value, dict):
        j = rest.find("{")
        if j < 0 or rest[:j].strip(" \t\r\n,"):
            break
        try:
            nxt, k = _from(rest, j, repairs)
        except ValueError:
            break
        more.append(nxt)
        rest = rest[k:]
    if more:
        repairs.append("joined several top-level objects into a list")
        value = [value, *more]
    elif rest.strip() and not m:
        repairs.append("ignored prose after the JSON")
    return value, repairs
