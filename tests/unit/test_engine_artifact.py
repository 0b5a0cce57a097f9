"""Artifact hashing: files, directories as a sorted Merkle tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blake3 import blake3

from blut.jobs import artifact
from blut.jobs.artifact import Artifact, Kind, hash_dir, hash_file, hash_path
from blut.status.usage import tree_size


def test_file_hash_is_blake3_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert hash_file(path) == blake3(b"hello").hexdigest()


def test_big_file_uses_mmap_and_agrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big"
    data = os.urandom(1 << 16)
    path.write_bytes(data)
    monkeypatch.setattr(artifact, "MMAP_THRESHOLD", 1)
    assert hash_file(path) == blake3(data).hexdigest()


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_dir_hash_depends_on_names_and_contents_only(tmp_path: Path) -> None:
    files = {"a.txt": b"1", "sub/b.bin": b"2", "sub/deeper/c": b"3"}
    one = _tree(tmp_path / "one", files)
    two = _tree(tmp_path / "two", dict(reversed(list(files.items()))))
    os.utime(two / "a.txt", (1, 1))
    assert hash_dir(one) == hash_dir(two)
    (two / "sub" / "b.bin").write_bytes(b"changed")
    assert hash_dir(one) != hash_dir(two)
    renamed = _tree(tmp_path / "three", {"a2.txt": b"1", "sub/b.bin": b"2", "sub/deeper/c": b"3"})
    assert hash_dir(one) != hash_dir(renamed)


def test_dir_and_file_hashes_differ_and_symlinks_are_not_followed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"x": b"data"})
    assert hash_path(root) != hash_path(root / "x")
    before = hash_dir(root)
    (root / "link").symlink_to("x")
    with_link = hash_dir(root)
    assert with_link != before
    (root / "link").unlink()
    (root / "link").symlink_to("elsewhere")
    assert hash_dir(root) != with_link


def test_artifact_of_and_size(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"x": b"abc", "y/z": b"de"})
    art = Artifact.of(Kind.NUMBERS, root)
    assert art.hash == hash_dir(root) and art.kind == "numbers"
    assert tree_size(root) == 5
