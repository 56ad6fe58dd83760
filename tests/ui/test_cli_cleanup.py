"""`kezhao dupes`, `kezhao cleanup` and `kezhao trash` end to end, through the installed
entry point, on a library indexed with the tiny test model (no semantics: the perceptual
hash is what finds the copies here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_photo
from tests.ui.test_cli import run
from tests.variants import save_original, save_variant


def _build(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "客户照片"
    original = save_original(root / "张三" / "会议" / "orig.jpg", seed=5)
    for kind in ("half", "png", "blurred"):
        save_variant(original, kind, root / "张三" / "导出")
    for seed in (30, 31):
        write_photo(root / "张三" / "会议" / f"other{seed}.jpg", seed=seed, size=(640, 480))
    save_variant(original, "exact", root / "李四", stem="forwarded")
    lib = ["--library", str(tmp_path / "lib")]
    run("index", str(root), *lib, "--model", "tiny-test")
    return root, lib


@pytest.fixture
def indexed(tmp_path):
    return _build(tmp_path)


@pytest.fixture(scope="module")
def indexed_once(tmp_path_factory):
    """Shared by tests that only read: mistakes must change nothing anyway."""
    return _build(tmp_path_factory.mktemp("cleanup-cli"))


def test_dupes_list_resolve_and_trash_round_trip(indexed):
    root, lib = indexed
    listed = run("dupes", *lib, "--json")
    assert "NO semantic meaning" in listed.stderr
    [group] = json.loads(listed.stdout)
    keeper = next(p for p in group["photos"] if p["keeper"])
    assert keeper["id"] == group["keeper"] and Path(keeper["path"]).name == "orig.jpg"
    assert {Path(p["path"]).name for p in group["photos"]} == {
        "orig.jpg", "orig_half.jpg", "orig_png.png", "orig_blurred.jpg"}
    blurred = next(p for p in group["photos"] if p["path"].endswith("orig_blurred.jpg"))
    assert blurred["blurry"] and blurred["reason"].startswith("blurry: sharpness")
    assert group["resolve"] == f"kezhao dupes resolve {group['group']}"

    text = run("dupes", *lib).stdout
    assert f"→ kezhao dupes resolve {group['group']}" in text and "keep  #" in text

    exact = json.loads(run("dupes", *lib, "--strictness", "exact", "--all-clients",
                           "--json").stdout)
    assert [sorted(Path(p["path"]).name for p in g["photos"]) for g in exact] == [
        ["forwarded.jpg", "orig.jpg"]]
    assert json.loads(run("dupes", *lib, "--strictness", "exact", "--json").stdout) == []

    blurry = json.loads(run("cleanup", "blurry", *lib, "--client", "张三", "--json").stdout)
    assert Path(blurry[0]["path"]).name == "orig_blurred.jpg"
    assert "orig.jpg" not in {Path(p["path"]).name for p in blurry}

    copies = {p["path"]: Path(p["path"]).read_bytes() for p in group["photos"]
              if not p["keeper"]}
    resolved = json.loads(run("dupes", "resolve", group["group"], *lib, "--json").stdout)
    assert resolved["keeper"] == keeper["id"] and len(resolved["trashed"]) == 3
    assert not any(Path(p).exists() for p in copies)

    hits = json.loads(run("search", "会议", *lib, "-k", "50", "--json").stdout)
    assert not set(copies) & {h["path"] for h in hits}
    assert json.loads(run("dupes", *lib, "--json").stdout) == []

    trash = json.loads(run("trash", "list", *lib, "--json").stdout)
    assert {e["original_path"] for e in trash} == set(copies)
    first = trash[0]
    run("trash", "restore", str(first["id"]), *lib)
    assert Path(first["original_path"]).read_bytes() == copies[first["original_path"]]
    restored = json.loads(run("trash", "restore", "--all", *lib, "--json").stdout)
    assert len(restored["restored"]) == 2 and restored["skipped"] == []
    assert all(Path(p).read_bytes() == data for p, data in copies.items())
    assert "the trash is empty" in run("trash", "list", *lib).stdout


def test_emptying_the_trash_is_explicit_and_by_age(indexed):
    root, lib = indexed
    [group] = json.loads(run("dupes", *lib, "--json").stdout)
    keep = next(p["id"] for p in group["photos"] if p["path"].endswith("orig_png.png"))
    resolved = json.loads(run("dupes", "resolve", group["group"], "--keep", str(keep), *lib,
                              "--json").stdout)
    assert resolved["keeper"] == keep
    assert json.loads(run("trash", "empty", "--older-than", "30d", *lib, "--json").stdout) == []
    assert len(json.loads(run("trash", "list", *lib, "--json").stdout)) == 3
    out = run("trash", "empty", "--older-than", "0d", *lib).stdout
    assert "deleted 3 photo(s) for good; 0 still in the trash" in out
    status = json.loads(run("status", *lib, "--json").stdout)
    assert status["photos"].get("trashed", 0) == 0 and status["photos"]["ok"] == 4


@pytest.mark.parametrize("args, message", [
    (("dupes", "resolve", "12"), "not a duplicate group"),
    (("dupes", "resolve"), "which group"),
    (("dupes", "resolve", "1,2,3,4,5,6"), "not all duplicates"),
    (("dupes", "--client", "王五"), "no client named"),
    (("trash", "restore"), "one trash entry ID"),
    (("trash", "restore", "999"), "no trash entry 999"),
    (("trash", "empty", "--older-than", "soon"), "not an age"),
    (("cleanup", "dark", "--client", "nobody"), "no client named"),
])
def test_mistakes_get_one_clear_line(indexed_once, args, message):
    _, lib = indexed_once
    proc = run(*args, *lib, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in proc.stderr
    assert json.loads(run("trash", "list", *lib, "--json").stdout) == []
