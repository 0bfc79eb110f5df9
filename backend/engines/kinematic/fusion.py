"""The exemplars' aligned boundaries and names made into one proposal: the vote, the person's
names for the episode's own zero-shot cuts, missed grasps, confidences and uncertainty."""

from __future__ import annotations

import difflib
import statistics
from collections import Counter
from collections.abc import Sequence

import numpy as np

from core.annotations import Segment

from .alignment import Alignment, frame_of
from .anchors import ANCHOR_WITHIN, Event, missed_grasps, next_event
from .signals import clip01, noise_levels

# Cuts closer than this (seconds) are one.
MERGE_NEAR = 0.3


def symbolic_labels(
    ex_spans: list[tuple[int, int, str]],
    person: Sequence[Segment],
    tgt_spans: list[tuple[int, int, str]],
    fps: float,
) -> dict[int, str]:
    """The person's name for each zero-shot span of the episode (by its start frame), read off
    the exemplar without timing: the zero-shot analysis names the same events the same way in
    both episodes (a grasp, the lift after it, the release), so the two sequences of zero-shot
    names align (difflib) and each span takes the person's name that covers the matching span of
    the exemplar. A span with no match (the retry of a grasp that missed here only) takes the
    person's name of the same zero-shot name elsewhere in the exemplar, or none."""

    def person_at(a: int, b: int) -> str:
        best, cover = "", -1.0
        for s in person:
            ov = min(b / fps, s.end) - max(a / fps, s.start)
            if ov > cover:
                best, cover = s.name, ov
        return best

    def split_inside(a: int, b: int) -> bool:
        """The person cut inside this zero-shot span: it has no one name."""
        edge = ANCHOR_WITHIN * fps
        return any(a + edge < s.start * fps < b - edge for s in person[1:])

    def parts_of(a: int, b: int) -> list[str]:
        """The person's names over a zero-shot span they cut inside, in order."""
        edge = ANCHOR_WITHIN * fps
        names: list[str] = []
        for s in person:
            if min(b, s.end * fps) - max(a, s.start * fps) > edge and (not names or names[-1] != s.name):
                names.append(s.name)
        return names

    ex_names = [z for _, _, z in ex_spans]
    ex_person = [None if split_inside(a, b) else person_at(a, b) for a, b, _ in ex_spans]
    by_name: dict[str, str] = {}
    for z, p in zip(ex_names, ex_person, strict=True):
        if p is not None:
            by_name.setdefault(z, p)
    tgt_names = [z for _, _, z in tgt_spans]
    out: dict[int, str] = {}
    ops = difflib.SequenceMatcher(a=ex_names, b=tgt_names, autojunk=False).get_opcodes()
    for n_op, (op, i1, i2, j1, j2) in enumerate(ops):
        for k, j in enumerate(range(j1, j2)):
            if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
                name = ex_person[i1 + k]
            else:
                name = by_name.get(tgt_names[j])
            if name is not None:  # else the aligned proposal names it
                out[tgt_spans[j][0]] = name
        # The person cut the exemplar's last span here into phases and this episode's own analysis
        # cuts the same stretch more finely (its next spans have no match in the exemplar): the
        # phases go to the spans in order, the first from where both analyses start it.
        nxt = ops[n_op + 1] if n_op + 1 < len(ops) else None
        if op == "equal" and nxt is not None and nxt[0] == "insert" and ex_person[i2 - 1] is None:
            a, b, _ = ex_spans[i2 - 1]
            parts = parts_of(a, b)
            extra = nxt[4] - nxt[3]
            if len(parts) >= extra + 1:
                for name, j in zip(parts, range(j2 - 1, nxt[4]), strict=False):
                    out[tgt_spans[j][0]] = name
    return out


def fuse(
    runs: list[tuple[str, int, int]],
    cuts: list[int],
    best: Alignment,
    n: int,
    fps: float,
    symbolic: dict[int, str] | None = None,
    spans: list[tuple[int, int, str]] | None = None,
    misses: Sequence[int] = (),
) -> list[tuple[str, int, int]]:
    """The person's segments, cut where this episode's own kinematics cut (`spans`: its zero-shot
    spans (start, end, name), which `symbolic` names by their start; `misses`: the frames where
    its gripper closed on nothing).

    The aligned proposal knows the person's names and which moments they cut at, but only
    to within DTW's error; the zero-shot analysis of the episode itself cuts precisely. So
    the episode is cut at its zero-shot cuts plus the aligned boundaries that sit at a gripper
    event the exemplar also had and that no zero-shot cut is near, and each piece takes the
    name the aligned proposal gives most of its frames; neighbours with one name are one.
    """
    if not cuts:
        return runs
    pinned = best.pinned
    # Each target frame's name: what the exemplar frames the path pairs it with are called.
    segs = best.exemplar.annotation.segments
    ex_label = np.zeros(len(best.to_target), dtype=np.int64)
    for k, s in enumerate(segs[1:], 1):
        ex_label[frame_of(s.start, fps, len(ex_label)) :] = k
    votes = np.zeros((n, len(segs)))
    if best.path is not None and len(best.path):
        np.add.at(votes, (best.path[:, 1], ex_label[best.path[:, 0]]), 1)
    labels = np.array([segs[int(k)].name for k in np.argmax(votes, axis=1)], dtype=object)
    for name, a, b in runs:
        labels[a:b] = name
    near = round(0.5 * fps)
    symbolic = symbolic or {}
    own = [(a, z) for a, _, z in spans or []]

    def retried(a: int) -> bool:
        """The zero-shot span at `a` starts the episode's own retry: a grasp closed on nothing in the
        span before it, and it has the name of the span before that (an approach, the grasp that
        missed, an approach again)."""
        i = next((i for i, (c, _) in enumerate(own) if c == a), None)
        if i is None or i < 2 or not own[i - 2][1] == own[i][1] != own[i - 1][1]:
            return False
        edge = ANCHOR_WITHIN * fps
        return any(own[i - 1][0] - edge <= m <= a + edge for m in misses)

    extra = [
        a
        for _, a, _ in runs[1:]
        if any(abs(a - p) <= 2 for p in pinned) and all(abs(a - c) > near for c in cuts)
    ]
    zs = sorted({0, *[c for c in cuts if 0 < c < n]})

    def pieces(bounds: list[int]) -> list[tuple[str, int, int]]:
        parts = [(a, bounds[i + 1] if i + 1 < len(bounds) else n) for i, a in enumerate(bounds)]
        parts = [(a, b) for a, b in parts if b > a]
        options = []
        for a, b in parts:
            # the commonest name; a tie goes to the first in sorted order
            counts = Counter(labels[a:b].tolist())
            aligned = str(min(counts, key=lambda name: (-counts[name], name)))
            whole = a in zs and (b == n or b in zs)  # a zero-shot span no aligned boundary splits
            hint = int(np.argmax(votes[a:b].sum(axis=0)))  # the exemplar segment the path puts here
            options.append((symbolic.get(a) if whole else None, aligned, hint, retried(a)))
        out: list[tuple[str, int, int]] = []
        for name, (a, b) in zip(in_order(options, [s.name for s in segs]), parts, strict=True):
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1], b)
            else:
                out.append((name, a, b))
        return out

    bounds = sorted({*zs, *extra})
    out = pieces(bounds)
    # A phase of the person's the episode's own cuts have no edge for (a change of direction the
    # change-point search missed, a push that starts without a gripper event) would vanish: it
    # comes back with the aligned boundaries, imprecise as they are, rather than not at all.
    kept = {name for name, _, _ in out}
    lost = [(a, b) for name, a, b in runs if name not in kept and b - a > near]
    if lost:
        edges = {e for a, b in lost for e in (a, b) if 0 < e < n and all(abs(e - c) > near for c in bounds)}
        out = pieces(sorted({*bounds, *edges}))
    return out


# What choosing the aligned proposal's name over the episode's own zero-shot name costs, what
# naming a piece after some other phase of the person's costs (where both readings break the
# order), what losing a zero-shot cut costs (two pieces in a row taking one phase), and what a
# name that goes back in the person's order costs where neither reading goes back there itself.
ALIGNED_COST, OTHER_COST, MERGE_COST, BACK_COST = 1.0, 2.0, 1.5, 3.0


def in_order(options: list[tuple[str | None, str, int, bool]], order: list[str]) -> list[str]:
    """One name per piece, from (symbolic, aligned, hint, repeat): the symbolic one where it keeps
    the person's order.

    The two readings fail differently: the aligned vote misnames a cut the exemplar's own
    zero-shot analysis missed, or a whole stretch where the alignment went wrong (a retry the
    exemplar did not have); the symbolic matching misnames a span whose zero-shot name occurs
    more than once (each arm's retreat). A person's phases come in the order of the exemplar's
    segments (`order`), so the names are chosen together, by a small dynamic programme over
    the exemplar phase each piece is in: symbolic names are preferred, an aligned one costs
    ALIGNED_COST, any other phase OTHER_COST; two pieces in a row in one phase lose a zero-shot
    cut (MERGE_COST); going back in the order costs BACK_COST, except one phase back where the
    aligned names go back and forth there themselves (a retry `insert_missed` cut in) or the
    episode's own zero-shot names do (`repeat`: a grasp that missed, and the new approach). `hint`
    is the exemplar segment the alignment path pairs most of the piece with: where it bears
    the aligned name, that is the aligned name's phase.
    """
    if all(s is None or s == a for s, a, _, _ in options):
        return [s or a for s, a, _, _ in options]
    # Where the aligned names themselves go one phase back and forth (a retry `insert_missed` cut in).
    aligned_retry, seen = [], []
    for _, a, _, _ in options:
        aligned_retry.append(len(seen) >= 2 and seen[-1] != a and seen[-2] == a)
        if not seen or seen[-1] != a:
            seen.append(a)
    where: dict[str, list[int]] = {}
    for k, name in enumerate(order):
        where.setdefault(name, []).append(k)
    # state: the exemplar phase of the last piece -> (cost, names so far)
    states: dict[int, tuple[float, list[str]]] = {-1: (0.0, [])}
    for (sym, aligned, hint, repeat), back in zip(options, aligned_retry, strict=True):
        choices: list[tuple[str, int | None, float]] = []
        # A name the exemplar does not have (another exemplar's) is in no phase of its order (None).
        aligned_at = (
            [hint] if 0 <= hint < len(order) and order[hint] == aligned else where.get(aligned, [None])
        )
        choices += [(aligned, k, 0.0 if sym in (None, aligned) else ALIGNED_COST) for k in aligned_at]
        if sym is not None and sym != aligned:
            choices += [(sym, k, 0.0) for k in where.get(sym, [None])]
        choices += [(name, k, OTHER_COST) for k, name in enumerate(order) if name not in (sym, aligned)]
        nxt: dict[int, tuple[float, list[str]]] = {}
        for last, (cost, names) in states.items():
            for name, k_or_none, pay in choices:
                k = last if k_or_none is None else k_or_none
                if k_or_none is None or k > last:
                    step = 0.0
                elif k == last:
                    step = MERGE_COST
                elif last - k == 1 and ((name == aligned and back) or (name == sym and repeat)):
                    step = 0.0
                else:
                    step = BACK_COST
                total = cost + pay + step
                if k not in nxt or total < nxt[k][0]:
                    nxt[k] = (total, [*names, name])
        states = nxt
    return min(states.values(), key=lambda v: v[0])[1]


def insert_missed(
    runs: list[tuple[str, int, int]],
    best: Alignment,
    ex_events: list[Event],
    tgt_events: list[Event],
    fps: float,
) -> list[tuple[str, int, int]]:
    """A grasp that missed here and not in the exemplar: cut it in as the exemplar names a grasp
    and a new approach (the grasp's name from the miss, the approach's from where the arm sets off
    again after opening)."""
    _, tgt_extra = missed_grasps(ex_events, tgt_events)
    if not tgt_extra:
        return runs
    segs = best.exemplar.annotation.segments
    n_ex = len(best.to_target)
    cuts = {a: name for name, a, _ in runs}
    for miss in tgt_extra:
        hold = next_event(ex_events, -1, "close", miss.arm, "holds")
        if hold is None:
            continue
        k = next(
            (
                i
                for i, s in enumerate(segs)
                if abs(frame_of(s.start, fps, n_ex) - hold.frame) <= ANCHOR_WITHIN * fps
            ),
            None,
        )
        if k is None or k == 0:
            continue
        grasp_name, reach_name = segs[k].name, segs[k - 1].name
        reopen = next_event(tgt_events, miss.frame, "open", miss.arm)
        again = next_event(tgt_events, reopen.frame if reopen else miss.frame, "onset", miss.arm)
        if any(abs(a - miss.frame) <= MERGE_NEAR * fps for a in cuts):
            continue
        cuts[miss.frame] = grasp_name
        if again is not None and not any(abs(a - again.frame) <= MERGE_NEAR * fps for a in cuts):
            cuts[again.frame] = reach_name
    starts = sorted(cuts)
    out = []
    n = runs[-1][2]
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else n
        if out and out[-1][0] == cuts[a]:
            out[-1] = (cuts[a], out[-1][1], b)
        else:
            out.append((cuts[a], a, b))
    return out


def frame_labels(al: Alignment, fps: float, n: int) -> tuple[list[str], np.ndarray]:
    """Per target frame, the index of the exemplar segment name it falls in."""
    names = [s.name for s in al.exemplar.annotation.segments]
    out = np.zeros(n, dtype=np.int64)
    for k, j in enumerate(al.bounds, 1):
        out[j:] = k
    return names, out


def vote(aligns: Sequence[Alignment], weights: np.ndarray, fps: float, n: int) -> list[tuple[str, int, int]]:
    """Runs (name, start, end) of the per-frame weighted vote over the exemplars' labels."""
    vocab: dict[str, int] = {}
    scores: list[np.ndarray] = []
    for al, w in zip(aligns, weights, strict=True):
        names, idx = frame_labels(al, fps, n)
        for k, name in enumerate(names):
            c = vocab.setdefault(name, len(vocab))
            if c == len(scores):
                scores.append(np.zeros(n))
            scores[c][idx == k] += w
    best = np.argmax(np.stack(scores), axis=0)
    inv = {v: k for k, v in vocab.items()}
    runs: list[tuple[str, int, int]] = []
    start = 0
    for j in range(1, n + 1):
        if j == n or best[j] != best[start]:
            runs.append((inv[int(best[start])], start, j))
            start = j
    return runs


def drop_short(runs: list[tuple[str, int, int]], min_frames: int) -> list[tuple[str, int, int]]:
    """Flicker from the vote (a few frames of another label) joins the longer neighbour."""
    runs = list(runs)
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda i: runs[i][2] - runs[i][1])
        _, a, b = runs[k]
        if b - a >= min_frames:
            break
        if k == 0:
            n2, _, b2 = runs[1]
            runs[0:2] = [(n2, a, b2)]
        elif k == len(runs) - 1 or (runs[k - 1][2] - runs[k - 1][1]) >= (runs[k + 1][2] - runs[k + 1][1]):
            n0, a0, _ = runs[k - 1]
            runs[k - 1 : k + 1] = [(n0, a0, b)]
        else:
            n2, _, b2 = runs[k + 1]
            runs[k : k + 2] = [(n2, a, b2)]
        # neighbours that now share a name are one run
        merged: list[tuple[str, int, int]] = []
        for r in runs:
            if merged and merged[-1][0] == r[0]:
                merged[-1] = (r[0], merged[-1][1], r[2])
            else:
                merged.append(r)
        runs = merged
    return runs


def boundary_confidence(aligns: Sequence[Alignment], at: int, fps: float) -> float:
    """How well the exemplars agree on a boundary and how sharply the path pins it down."""
    near = [min(al.bounds, key=lambda j: abs(j - at)) for al in aligns if al.bounds]
    if not near:
        return 0.3
    off = statistics.median(abs(j - at) for j in near) / fps  # a handful of exemplars
    agree = clip01(1.0 - off / 0.5)
    return round(0.3 + 0.7 * agree, 4) if len(aligns) > 1 else 0.8


def variance_terms(x: np.ndarray) -> tuple[float, float]:
    """An episode's feature noise variance (summed over features) and spread, for `unexplained`."""
    noise = float(np.sum(noise_levels(x) ** 2))
    spread = float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))
    return noise, spread


def unexplained(cost: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """The share of the two episodes' feature variance the alignment leaves unexplained, noise
    aside: the mean squared distance along the path beyond what the sensors' noise alone puts
    there (two noisy frames differ by twice their noise variance), over the features' spread.
    `a`, `b`: each episode's `variance_terms`."""
    noise = a[0] + b[0]
    signal = 0.5 * (a[1] + b[1]) - 0.5 * noise
    return max(0.0, cost - noise) / max(signal, 1e-12)


def uncertainty_of(share: float, structure: float) -> float:
    """How badly the exemplars explain the episode: the variance their best alignment leaves
    unexplained (episodes of one task differ in where things are, so a quarter is a close match
    and most of it none), plus what the alignment could not carry over (grasps that missed in
    one episode only, boundaries no event pins down)."""
    return clip01((share - 0.25) / 0.6 + structure)
