"""The command line's streaming: CSV and Parquet data read and written chunk by chunk.

``neon explain`` on a ``.csv`` or ``.parquet`` file never holds the data or the relevance whole: it reads
``--batch-size`` rows, explains them, writes their rows of the relevance table, and moves on. What it prints
at the end (means, the features by mean |relevance|) is accumulated on the way (:class:`Totals`).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class CsvChunks:
    """A numeric CSV file, chunk by chunk: the header row (unless ``header`` is false), then rows of numbers."""

    def __init__(self, path: Path, header: bool):
        self.path, self.header = path, header
        with open(path, newline="") as f:
            first = next((r for r in csv.reader(f) if r), None)
        if first is None:
            raise ValueError(f"data file '{path}' is empty.")
        self.names: list[str] | None = [c.strip() for c in first] if header else None
        self.width = len(first)
        self.rows: int | None = None  # unknown until read

    def chunks(self, size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        """Rows ``size`` at a time (at most ``limit`` rows in all), as float64 arrays."""
        done = 0
        with open(self.path, newline="") as f:
            lines = (r for r in csv.reader(f) if r)
            if self.header:
                next(lines, None)
            line_no = 1 + int(self.header)
            while limit is None or done < limit:
                take = size if limit is None else min(size, limit - done)
                block = list(itertools.islice(lines, take))
                if not block:
                    return
                try:
                    arr = np.asarray(block, dtype=np.float64)
                except ValueError as err:
                    raise ValueError(f"data file '{self.path}' must hold numbers in equal-length rows (rows "
                                     f"{line_no}-{line_no + len(block) - 1}): {err}") from err
                if arr.ndim != 2 or arr.shape[1] != self.width:
                    raise ValueError(f"data file '{self.path}': rows {line_no}-{line_no + len(block) - 1} do not all "
                                     f"have {self.width} values.")
                line_no += len(block)
                done += len(arr)
                yield arr


class ParquetChunks:
    """A Parquet file of numeric columns, record batch by record batch."""

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = path
        self._file = pq.ParquetFile(str(path))
        self.names: list[str] | None = [str(n) for n in self._file.schema_arrow.names]
        self.width = len(self.names)
        self.rows: int | None = self._file.metadata.num_rows

    def chunks(self, size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        done = 0
        for batch in self._file.iter_batches(batch_size=size):
            arr = np.column_stack([np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64)
                                   for c in batch.columns]) if batch.num_columns else np.zeros((batch.num_rows, 0))
            if limit is not None and done + len(arr) > limit:
                arr = arr[:limit - done]
            if len(arr):
                done += len(arr)
                yield arr
            if limit is not None and done >= limit:
                return


class TableWriter:
    """The relevance table written chunk by chunk: ``.csv`` (one header row) or ``.parquet`` (row groups)."""

    def __init__(self, path: Path, columns: Sequence[str], suffix: str):
        self.path, self.columns, self.suffix = path, list(columns), suffix
        self._csv: Any = None
        self._parquet: Any = None

    def write(self, labels: Sequence[Any], numbers: np.ndarray) -> None:
        if self.suffix == ".csv":
            if self._csv is None:
                self._csv = open(self.path, "w", newline="")
                csv.writer(self._csv, lineterminator="\n").writerow(self.columns)
            buf = io.StringIO()
            np.savetxt(buf, numbers, delimiter=",", fmt="%.17g")  # round-trips float64 exactly
            writer = csv.writer(self._csv, lineterminator="\n")
            for label, line in zip(labels, buf.getvalue().splitlines()):
                writer.writerow([label, *line.split(",")])
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {self.columns[0]: pa.array(list(labels))}
        data.update({c: numbers[:, i] for i, c in enumerate(self.columns[1:])})
        table = pa.table(data)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(str(self.path), table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._parquet is not None:
            self._parquet.close()


class Totals:
    """What the summary needs, accumulated chunk by chunk: counts, sums of the outputs and |relevance|."""

    def __init__(self) -> None:
        self.n = 0
        self.output = 0.0
        self.abs_output = 0.0
        self.absorbed = 0.0
        self.abs_absorbed = 0.0
        self.abs_relevance: np.ndarray | None = None

    def add(self, output: np.ndarray, absorbed: np.ndarray, relevance: np.ndarray) -> None:
        self.n += len(output)
        self.output += float(np.sum(output))
        self.abs_output += float(np.abs(output).sum())
        self.absorbed += float(np.sum(absorbed))
        self.abs_absorbed += float(np.abs(absorbed).sum())
        r = np.abs(relevance.reshape(len(relevance), -1)).sum(0)
        self.abs_relevance = r if self.abs_relevance is None else self.abs_relevance + r
