"""`robo-backend annotate`: batch pre-annotation, resumable, one bad episode does not stop the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.store import Store

EXE = Path(sys.executable).with_name("robo-backend")


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300)


def _break_episode(root: Path, episode: int) -> None:
    """Make one episode unreadable: its metadata claims more frames than its data has."""
    path = next((root / "meta" / "episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    lengths = table.column("length").to_pylist()
    lengths[episode] += 5
    pq.write_table(
        table.set_column(table.schema.get_field_index("length"), "length", pa.array(lengths, pa.int64())),
        path,
    )


def test_annotate_is_resumable_and_records_errors(demo_copy, tmp_path):
    store = tmp_path / "store.db"
    _break_episode(demo_copy, 2)
    first = _run("annotate", demo_copy, "--store", store, "--episodes", 0, 1, 2, 3)
    assert first.returncode == 1, first.stderr
    assert "predicted 3, skipped 0" in first.stdout and "failed 1" in first.stdout
    assert "episode 2:" in first.stdout and "rows" in first.stdout
    with Store(store, readonly=True) as s:
        assert s.prediction("demo", 2, "kinematic@2.0")["status"] == "error"
        assert [h.episode for h in s.heads("demo")] == [0, 1, 3]

    second = _run("annotate", demo_copy, "--store", store)  # all episodes now
    assert "predicted 2, skipped 3" in second.stdout, second.stdout  # 4 and 5 new; 2 retried and fails again
    with Store(store, readonly=True) as s:
        assert [h.episode for h in s.heads("demo")] == [0, 1, 3, 4, 5]
        assert all(h.revision == 1 for h in s.heads("demo"))  # nothing predicted twice


def test_annotate_repredicts_when_the_exemplars_change(demo_root, tmp_path):
    """An accepted episode turns the others' model version into one that learns from it; a second
    acceptance changes it again; an episode accepted with no segments is named and not used."""
    import json
    import uuid

    from backend.evaluate import true_segments
    from core.annotations import EpisodeAnnotation
    from core.dataset import Dataset
    from core.protocol import Correction

    store = tmp_path / "store.db"
    ds = Dataset(demo_root)
    truth = {
        r["episode_index"]: r for r in json.loads((demo_root / "ground_truth.json").read_text())["episodes"]
    }

    def accept(ep: int, segments: bool = True) -> None:
        info = ds.episode(ep)
        with Store(store) as s, s.transaction():
            head = s.head_info(ds.name, ep)
            ann = EpisodeAnnotation(
                dataset=ds.name,
                episode=ep,
                duration=info.duration,
                fps=ds.fps,
                task=info.task,
                segments=true_segments(truth[ep], info.duration, ds.fps) if segments else [],
                review="accepted",
            )
            c = Correction(
                uuid=uuid.uuid4().hex,
                dataset=ds.name,
                episode=ep,
                base_revision=head.revision if head else 0,
                user="t",
                annotation=ann,
            )
            s.apply_correction(c)

    first = _run("annotate", demo_root, "--store", store)
    assert first.returncode == 0 and "predicted 6, skipped 0" in first.stdout, first.stdout + first.stderr
    accept(0)
    second = _run("annotate", demo_root, "--store", store)
    assert "predicted 5, skipped 1" in second.stdout, second.stdout  # the accepted one is skipped
    again = _run("annotate", demo_root, "--store", store)
    assert "predicted 0, skipped 6" in again.stdout, again.stdout
    accept(1, segments=False)
    third = _run("annotate", demo_root, "--store", store)
    assert "accepted episode 1 cannot serve as an exemplar: accepted with no segments" in third.stdout
    assert "predicted 0, skipped 6" in third.stdout, third.stdout  # episode 1 taught nothing new
    with Store(store, readonly=True) as s:
        models = {h.episode: h.model for h in s.heads(ds.name)}
    assert all("+ex-" in models[e] for e in (2, 3, 4, 5)), models
