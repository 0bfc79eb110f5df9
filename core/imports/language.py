"""lerobot 0.6's language columns (`lerobot.datasets.language`; our `lerobot-language` export).

- `language_persistent` (the same rows on every frame of an episode, each stamped
  with the time it becomes active): `subtask` rows are the segments (each from its
  row's time to the next one's, the last to the episode's end), `motion` rows the
  motion description of the segment active then, `task_aug` rows (role user) the
  task's phrasings. `plan` rows are derived from the subtasks and not imported;
  `memory` rows have no slot in our model and are counted, not imported.
- `language_events` (rows only on the frame they happen at): an `interjection`
  (role user) paired with the `say` tool call of the same frame (role assistant,
  style null) is a dialogue turn, the skill being the subtask active then (the
  columns have no slot for it, nor for the scenario and response types); `vqa` and
  `trace` pairs are read by `core.imports.grounding`.

Times are those of the frames (persistent timestamps snap to their frame).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from core.imports.base import Context, ImportFileError, SourceResult, Turn, make_cover
from core.imports.frames import first_frame_values, has_column, nonempty_list_values
from core.imports.grounding import Grounding

LANGUAGE_PERSISTENT = "language_persistent"
LANGUAGE_EVENTS = "language_events"


def _rows(value: Any, path: object, ep: int, column: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(r, dict) and "role" in r for r in value):
        raise ImportFileError(f"{path}: episode {ep}: column '{column}' does not hold lerobot language rows")
    return value


def read_persistent(ctx: Context) -> SourceResult | None:
    """Segments, motion descriptions and task phrasings from `language_persistent`."""
    if not has_column(ctx.dataset, LANGUAGE_PERSISTENT):
        return None
    result = SourceResult(LANGUAGE_PERSISTENT)
    for ep, value, path in first_frame_values(ctx.dataset, LANGUAGE_PERSISTENT):
        rows = _rows(value, path, ep, LANGUAGE_PERSISTENT)
        if not rows:
            continue
        subtasks, phrasings, other = [], [], Counter()
        found = result.found(ep)
        for row in rows:
            style, content = row.get("style"), (row.get("content") or "").strip()
            stamp = row.get("timestamp")
            t = ctx.snap(float(stamp), ep) if isinstance(stamp, int | float) else 0.0
            if style in ("subtask", "motion", "task_aug") and not content:
                result.note(f"episode {ep}: a {style} row at t={t:.3f} s has no content; left out")
            elif style == "subtask":
                subtasks.append((t, content))
            elif style == "motion":
                found.motion.append((t, content))
                result.counts["motion descriptions"] += 1
            elif style == "task_aug":
                phrasings.append(content)
            else:
                other[style or "(no style)"] += 1
        if subtasks:
            subtasks.sort(key=lambda s: s[0])
            ends = [s[0] for s in subtasks[1:]] + [ctx.duration(ep)]
            raw = [(name, t, end, "") for (t, name), end in zip(subtasks, ends, strict=True)]
            found.segments = make_cover(raw, ep, ctx.duration(ep), ctx.fps, ctx.source, result)
            result.counts["subtasks"] += len(found.segments)
        if phrasings:
            found.task_aug = list(dict.fromkeys(phrasings))
            result.counts["task phrasings"] += len(found.task_aug)
        if other.get("plan"):
            result.counts["plan rows (derived from the subtasks, not imported)"] += other.pop("plan")
        for style, n in other.items():
            result.counts[f"{style} rows (no slot in our model, not imported)"] += n
    return result


def _say_text(call: Any) -> str | None:
    """The text of a `say` tool call (a JSON string or an object; arguments may be a JSON string)."""
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except json.JSONDecodeError:
            return None
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or fn.get("name") != "say":
        return None
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    text = args.get("text") if isinstance(args, dict) else None
    return text.strip() if isinstance(text, str) and text.strip() else None


def read_events(ctx: Context) -> SourceResult | None:
    """Dialogue turns, QAs, boxes, contact points and trajectories from `language_events`."""
    if not has_column(ctx.dataset, LANGUAGE_EVENTS):
        return None
    result = SourceResult(LANGUAGE_EVENTS)
    cameras = set(ctx.dataset.cameras)
    sizes = {cam: ctx.dataset.camera_shape(cam) for cam in cameras}
    for ep, k, value, path in nonempty_list_values(ctx.dataset, LANGUAGE_EVENTS):
        rows = _rows(value, path, ep, LANGUAGE_EVENTS)
        t = ctx.frame_time(k)
        found = result.found(ep)
        grounding = Grounding(found, result, ep, ctx.source)
        prompts, says = [], []
        pairs: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
            lambda: {"user": [], "assistant": []}
        )
        for row in rows:
            style, role, camera = row.get("style"), row.get("role"), row.get("camera")
            if style == "interjection" and role == "user":
                prompts.append((row.get("content") or "").strip())
            elif style is None and row.get("tool_calls"):
                says.extend(s for s in (_say_text(c) for c in row["tool_calls"]) if s)
            elif style in ("vqa", "trace") and role in ("user", "assistant"):
                pairs[(style, camera or "")][role].append(row.get("content") or "")
            else:
                result.counts[
                    f"{style or 'speech'} rows of role {role} (no slot in our model, not imported)"
                ] += 1
        turns = [
            Turn(t=t, user_prompt=p, robot_utterance=s) for p, s in zip(prompts, says, strict=False) if p
        ]
        if turns:
            found.dialogue = (found.dialogue or []) + turns
            result.counts["dialogue turns"] += len(turns)
        if len(prompts) != len(says):
            result.note(
                f"episode {ep} t={t:.3f} s: {len(prompts)} interjection(s) and {len(says)} say call(s); "
                "only pairs are dialogue turns, the rest is left out"
            )
        for (style, camera), qa in pairs.items():
            if camera not in cameras:
                result.note(
                    f"episode {ep} t={t:.3f} s: a {style} pair on camera {camera!r}, which the dataset does not "
                    f"have ({', '.join(sorted(cameras)) or 'no cameras'}); left out"
                )
                continue
            if len(qa["user"]) != len(qa["assistant"]):
                result.note(
                    f"episode {ep} t={t:.3f} s on {camera}: {len(qa['user'])} {style} question(s) and "
                    f"{len(qa['assistant'])} answer(s); only pairs are read"
                )
            for question, answer in zip(qa["user"], qa["assistant"], strict=False):
                if style == "vqa":
                    grounding.vqa(t, camera, question, answer, sizes[camera])
                else:
                    grounding.trace(t, camera, answer, sizes[camera], ctx.duration(ep))
    for ep in [
        ep
        for ep, f in result.episodes.items()
        if not (f.dialogue or f.qa or f.boxes or f.contacts or f.trajectories)
    ]:
        del result.episodes[ep]
    return result
