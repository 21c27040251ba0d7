"""Training metrics as files a person can open: one JSON object per line (JSONL) and a CSV.

Each record carries a ``step``. A resumed run continues at the step of its checkpoint, so
records written after that checkpoint (by the interrupted run) would repeat: opening the
logger with ``resume_step=s`` first drops every record with ``step > s`` from both files.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Append step records to ``<directory>/<name>.jsonl`` and ``<directory>/<name>.csv``.

    The CSV columns are the keys of the first record ever written (kept on resume); later
    keys that are not columns are only in the JSONL file.

    Args:
        directory: where the files go (created).
        name: file stem.
        resume_step: drop existing records after this step (None: start both files afresh).
        enabled: False turns every call into a no-op (non-main ranks).
    """

    def __init__(
        self,
        directory: str | Path,
        name: str = "metrics",
        *,
        resume_step: int | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        directory = Path(directory)
        self.jsonl_path = directory / f"{name}.jsonl"
        self.csv_path = directory / f"{name}.csv"
        self._columns: list[str] | None = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        kept = self._records_up_to(resume_step) if resume_step is not None else []
        self.jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.csv_path.unlink(missing_ok=True)
        for record in kept:
            self._append_csv(record)

    def _records_up_to(self, step: int) -> list[dict[str, Any]]:
        if not self.jsonl_path.is_file():
            return []
        records = []
        for line in self.jsonl_path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("step", -1) <= step:
                    records.append(record)
        return records

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record (it must hold ``step``); non-finite floats are written as null."""
        if not self.enabled:
            return
        if "step" not in record:
            raise ValueError(f"a metrics record needs a 'step', got keys {sorted(record)}")
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(clean) + "\n")
        self._append_csv(clean)

    def _append_csv(self, record: Mapping[str, Any]) -> None:
        new_file = not self.csv_path.is_file()
        if self._columns is None:
            self._columns = list(record)
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(record)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL metrics file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
