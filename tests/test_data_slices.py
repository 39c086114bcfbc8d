"""The slices of the real data in tests/data: each is what SOURCE.md says, and, when the full
data set is there, each is exactly the cut of its original that make_slices.py makes."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from helpers import SHARED_DATA, SLICES, lay_out_slices, require_full_data, slice_table


def test_every_slice_is_listed_with_its_sha256(tmp_path: Path) -> None:
    root = lay_out_slices(tmp_path)  # raises on a sha256 that differs
    listed = {stored.resolve() for _, stored, _ in slice_table()}
    stored = {p.resolve() for p in SLICES.rglob("*")
              if p.is_file() and p.name not in ("SOURCE.md", "make_slices.py")
              and "__pycache__" not in p.parts}
    assert stored - listed == set(), "files in tests/data that SOURCE.md does not list"
    seen = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert seen == {rel for rel, _, _ in slice_table()}


def test_slices_are_cut_from_the_full_files() -> None:
    """make_slices.py, run on the full data set, gives exactly the slices that SOURCE.md lists
    (it checks each cut against a parse of its original as it makes it)."""
    require_full_data("compares each slice with its original")
    spec = importlib.util.spec_from_file_location("make_slices", SLICES / "make_slices.py")
    assert spec is not None and spec.loader is not None
    make_slices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_slices)
    table = {rel: (stored, sha) for rel, stored, sha in slice_table()}
    made = {rel for rel, _, _ in make_slices.SLICES}
    assert made <= set(table)
    for rel, how, n in make_slices.SLICES:
        name, data, _ = make_slices.make(SHARED_DATA, rel, how, n)
        stored, sha = table[rel]
        assert stored == SLICES / name, rel
        assert hashlib.sha256(make_slices.content_of(data)).hexdigest() == sha, rel
    # The one slice not made here: the whole BTC/USDT 1m file, shipped as the example's data.
    for rel in set(table) - made:
        stored, sha = table[rel]
        assert hashlib.sha256((SHARED_DATA / rel).read_bytes()).hexdigest() == sha, rel
