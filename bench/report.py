# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a benchmark prints, and what `make bench` gathers into bench/RESULTS.md.

Every benchmark reports through one Report: a figure is a measurement with its unit, a
ratio is a measurement divided by a baseline taken in the same run.  Either may carry a
target: at most (times, memory) or at least (rates).  The lines go to stdout as they come; when
PODMGR_BENCH_RESULTS names a directory (bench/run.py sets it), the report is also written
there as BENCH.json, which bench/run.py turns into the tables of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

RESULTS_ENV = "PODMGR_BENCH_RESULTS"


@dataclass(frozen=True)
class Row:
    what: str
    value: float
    unit: str  # "x" for a ratio
    at_most: float | None = None
    note: str = ""
    at_least: float | None = None  # a rate or a ratio of rates: more is better

    @property
    def met(self) -> bool | None:
        if self.at_most is not None:
            return self.value <= self.at_most
        if self.at_least is not None:
            return self.value >= self.at_least
        return None

    def quantity(self, number: str) -> str:
        """``number`` in this row's unit: "1.50x" for a ratio, "12.00 ms" for a figure."""
        return number + (self.unit if self.unit == "x" else f" {self.unit}")

    def target(self) -> str:
        if self.at_most is not None:
            return f"<= {self.quantity(f'{self.at_most:g}')}"
        if self.at_least is not None:
            return f">= {self.quantity(f'{self.at_least:g}')}"
        return ""

    def verdict(self) -> str:
        if self.met is None:
            return ""
        return f"target {self.target()}: {'met' if self.met else 'NOT met'}"


class Report:
    """Rows of one benchmark; use as a context manager so the file is written at the end."""

    def __init__(self, bench: str, title: str) -> None:
        self.bench = bench
        self.title = title
        self.rows: list[Row] = []
        print(title, flush=True)

    def figure(
        self,
        what: str,
        value: float,
        unit: str,
        at_most: float | None = None,
        note: str = "",
        at_least: float | None = None,
    ) -> float:
        return self._add(Row(what, value, unit, at_most, note, at_least))

    def ratio(
        self,
        what: str,
        value: float,
        at_most: float | None = None,
        note: str = "",
        at_least: float | None = None,
    ) -> float:
        return self.figure(what, value, "x", at_most, note, at_least)

    def _add(self, row: Row) -> float:
        self.rows.append(row)
        shown = row.quantity(f"{row.value:9.2f}")
        extra = "; ".join(part for part in (row.verdict(), row.note) if part)
        print(f"  {row.what:<58} {shown}" + (f"  ({extra})" if extra else ""), flush=True)
        return row.value

    def __enter__(self) -> Report:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        directory = os.environ.get(RESULTS_ENV)
        if kind is None and directory:
            record = {
                "bench": self.bench,
                "title": self.title,
                "rows": [asdict(r) for r in self.rows],
            }
            Path(directory, f"{self.bench}.json").write_text(json.dumps(record, indent=1) + "\n")


def load(path: Path) -> tuple[str, list[Row]]:
    """A report written by Report, as (title, rows)."""
    record = json.loads(path.read_text())
    return record["title"], [Row(**row) for row in record["rows"]]
