"""Names for proposed segments, from the task text: its objects and where they go.

"pass the yellow cube from the right arm to the left arm and put it in the purple
bowl" grasps a cube and places it in a bowl; "hold up the orange socket and
insert the blue peg into it" grasps a socket, then a peg. Segments are named
`<verb>_<object>` (reach_cube, grasp_peg, place_in_bowl) as a person would, and
the reviewer's own names replace them once exemplars exist.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from backend.engines.kinematic.signals import PICK_WORDS, tokens

# Words that are never the thing handled: robot parts, sides, colours, fillers.
NOT_OBJECTS = {
    "the", "a", "an", "it", "them", "this", "that", "and", "then", "from", "to", "with", "of", "up",
    "down", "into", "in", "on", "onto", "inside", "out", "off", "over", "at", "by", "for", "its", "their",
    "arm", "arms", "hand", "hands", "gripper", "grippers", "robot", "left", "right", "other", "both",
    "one", "two", "first", "second", "again", "please", "back", "there", "here", "all", "table",
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "black", "white", "grey", "gray",
    "brown", "small", "big", "large", "little", "cyan", "magenta",
    "pick", "grab", "grasp", "take", "lift", "get", "put", "place", "move", "pass", "give",
    "insert", "push", "pull", "hold", "stack", "drop", "open", "close", "turn", "rotate", "slide",
    "bring", "carry", "transfer", "fold", "pour", "wipe", "press", "set", "leave", "return",
}  # fmt: skip
PLACE_PREPOSITIONS = {"in", "into", "on", "onto", "inside", "to", "at", "over"}
PLACE_VERBS = {"put", "place", "drop", "set", "leave", "stack", "insert"}
# Tasks done by touching, not holding: reach, the contact motion itself, retreat.
CONTACT_VERBS = {
    "push",
    "slide",
    "shove",
    "nudge",
    "poke",
    "press",
    "wipe",
    "sweep",
    "drag",
    "tap",
    "flip",
    "knock",
}


@dataclass(frozen=True)
class TaskWords:
    objects: tuple[str, ...]  # things grasped, in the order the task names them
    target: str | None  # where the last one goes, if the task says
    contact: str | None = None  # the verb of a task done by touching (push, wipe, ...), if it is one

    def grasped(self, k: int) -> str:
        """The object of the k-th grasp (a handover grasps the same one twice)."""
        if not self.objects:
            return "object"
        return self.objects[min(k, len(self.objects) - 1)]


def task_words(task: str) -> TaskWords:
    words = tokens(task)
    objects: list[str] = []
    target = None
    contact = next((w for w in words if w in CONTACT_VERBS), None)
    for i, w in enumerate(words):
        if w in NOT_OBJECTS or len(w) < 2:
            continue
        before = words[i - 1] if i else ""
        # "put it in the purple bowl": a noun after a placing preposition (skipping adjectives)
        j = i - 1
        while j >= 0 and words[j] in NOT_OBJECTS and words[j] not in PLACE_PREPOSITIONS:
            j -= 1
        after_prep = j >= 0 and words[j] in PLACE_PREPOSITIONS and before != "from"
        verb_before = any(v in PLACE_VERBS for v in words[max(0, j - 3) : j + 1]) if after_prep else False
        if after_prep and (verb_before or objects):
            target = w
        elif w not in objects:
            objects.append(w)
    return TaskWords(tuple(objects), target, contact)


def task_cycles(task: str) -> int | None:
    """How many pick-and-place cycles the task text asks for, if it says (counts pick verbs)."""
    words = tokens(task)
    picks = sum(1 for w in words if w in PICK_WORDS)
    return picks or None


def word_map(source_task: str, target_task: str) -> dict[str, str]:
    """Words of one task string that stand where the other's differ, position by position.

    "pick up the blue cylinder and place it in the bowl" against "pick up the red cube and
    place it on the plate" maps blue->red, cylinder->cube, in->on, bowl->plate: instructions
    of one task that name each episode's own objects differ only in those words.
    """
    a, b = tokens(source_task), tokens(target_task)
    out: dict[str, str] = {}
    if not a or not b or a == b:
        return out
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                out.setdefault(x, y)
    return out


def adapt_name(name: str, mapping: dict[str, str]) -> str:
    """A segment name with the source task's words replaced by the target's (reach_cylinder -> reach_cube)."""
    if not mapping:
        return name
    parts = re.split(r"([^A-Za-z]+)", name)
    return "".join(mapping.get(p.lower(), p) if p.isalpha() else p for p in parts)
