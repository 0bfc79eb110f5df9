"""Import what a dataset already has: annotations made elsewhere become revisions to review.

`import_dataset(dataset, store)` reads, where present, `meta/skills.json` and
`meta/subtasks.parquet` (LeRobot's subtask annotation tools, our `lerobot-subtasks`
export), `meta/tasks_high_level.parquet` and `meta/syn_annotations.jsonl` (dialogue,
as lerobot's `annotate_pgen.py` and the same export write them) and lerobot 0.6's
`language_persistent` / `language_events` columns (our `lerobot-language` export),
and stores one revision per episode by `human:<author>`: unreviewed, so a person
reviews it, or accepted, so the propagation engine learns from it. One module per
source (`skills`, `dialogue`, `language` with `grounding`), `assemble` combines and
stores; plain pyarrow and JSON, no lerobot needed.
"""

from __future__ import annotations

from core.imports.assemble import ImportReport, import_dataset
from core.imports.base import ImportFileError

__all__ = ["ImportFileError", "ImportReport", "import_dataset"]
