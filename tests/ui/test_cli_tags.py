"""`kezhao tags …` end to end through the CLI's main(): listing (with --json), review,
decisions in bulk, undo, user tags, "more like these" and XMP export.

The tiny test model has NO semantics, so which tags get suggested is arbitrary; the tests
make one tag certain (threshold near 0) where they need a known set of suggestions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import write_photo
from ui.cli import main


@pytest.fixture(scope="module")
def indexed_library(tmp_path_factory) -> Path:
    """Eight photos of two clients, indexed once; each test works on a copy."""
    base = tmp_path_factory.mktemp("tags-cli")
    root = base / "photos"
    for i in range(5):
        write_photo(root / "张三" / f"z{i}.jpg", seed=i, size=(96, 72))
    for i in range(3):
        write_photo(root / "李四" / f"l{i}.jpg", seed=50 + i, size=(96, 72))
    args = ["--library", str(base / "lib")]
    assert main(["index", str(root), *args, "--model", "tiny-test"]) == 0
    # Eight random-model photos may leave no suggestion at all: make 'meeting' certain.
    assert main(["tags", "edit", "meeting", "--threshold", "0.0001", *args]) == 0
    return base / "lib"


@pytest.fixture
def lib(indexed_library: Path, tmp_path: Path, capsys) -> list[str]:
    copy = tmp_path / "lib"
    shutil.copytree(indexed_library, copy)
    capsys.readouterr()
    return ["--library", str(copy)]


def run_json(capsys, *argv: str):
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def run_text(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_review_accept_and_undo(lib, capsys):
    tags = run_json(capsys, "tags", "list", *lib)
    assert len(tags) >= 40
    assert {"key", "zh", "en", "accepted", "suggested", "rejected"} <= set(tags[0])

    pending = run_json(capsys, "tags", "review", *lib)
    assert len({s["photo_id"] for s in pending}) == 8
    first = pending[0]
    assert {"photo_id", "path", "client", "tag", "zh", "en", "score", "source"} <= set(first)

    code, out, err = run_text(capsys, "tags", "review", *lib)
    assert code == 0 and f"[{first['tag']}]" in out and "NO semantic meaning" in err

    decision = run_json(capsys, "tags", "accept", str(first["photo_id"]), "--tag", first["tag"],
                        *lib)
    assert decision["changed"] == [first["photo_id"]] and decision["state"] == "accepted"
    hits = run_json(capsys, "search", "anything", "--tag", first["tag"], "-k", "5", *lib)
    assert [h["id"] for h in hits] == [first["photo_id"]]
    assert first["tag"] in hits[0]["tags"]

    code, out, _ = run_text(capsys, "tags", "undo", *lib)
    assert code == 0 and out.startswith(f"undid {first['tag']} on 1 photo(s)")
    assert run_json(capsys, "search", "anything", "--tag", first["tag"], "-k", "5", *lib) == []
    code, out, _ = run_text(capsys, "tags", "undo", *lib)
    assert "nothing to undo" in out


def test_accept_all_suggested_for_a_tag_within_a_client(lib, capsys):
    review = run_json(capsys, "tags", "review", "--tag", "会议", *lib)
    by_client = {c: sorted(s["photo_id"] for s in review if s["client"] == c)
                 for c in ("张三", "李四")}
    assert len(by_client["张三"]) == 5 and len(by_client["李四"]) == 3

    decision = run_json(capsys, "tags", "accept", "--all-suggested", "--tag", "会议",
                        "--client", "张三", *lib)
    assert sorted(decision["changed"]) == by_client["张三"]
    left = run_json(capsys, "tags", "review", "--tag", "meeting", *lib)
    assert sorted(s["photo_id"] for s in left) == by_client["李四"]

    rejected = run_json(capsys, "tags", "reject", str(by_client["李四"][0]), "--tag", "meeting",
                        *lib)
    assert rejected["changed"] == [by_client["李四"][0]]
    info = next(t for t in run_json(capsys, "tags", "list", *lib) if t["key"] == "meeting")
    assert (info["accepted"], info["rejected"]) == (5, 1)
    assert info["threshold"] == pytest.approx(0.0001)


def test_user_tags_more_like_these_and_xmp_export(lib, capsys, tmp_path):
    pending = run_json(capsys, "tags", "review", "--tag", "meeting", *lib)
    zhang = sorted(s["photo_id"] for s in pending if s["client"] == "张三")
    li = sorted(s["photo_id"] for s in pending if s["client"] == "李四")

    added = run_json(capsys, "tags", "add", "sample_garment", "--zh", "样衣", "--en",
                     "sample garment", "--example", str(zhang[0]), *lib)
    assert added["tag"]["prompts"] == [] and added["examples"]["changed"] == [zhang[0]]

    liked = run_json(capsys, "tags", "like", str(zhang[0]), "-k", "3", *lib)
    assert len(liked) == 3 and zhang[0] not in [h["photo_id"] for h in liked]
    saved = run_json(capsys, "tags", "like", str(li[0]), str(li[1]), "--tag", "booth_wall",
                     "--zh", "展墙", "--en", "booth wall", "-k", "2", *lib)
    assert len(saved) == 2 and {li[0], li[1]}.isdisjoint(h["photo_id"] for h in saved)

    report = run_json(capsys, "tags", "export-xmp", "--to", str(tmp_path / "xmp"), *lib)
    assert report["created"] == 3 and report["failed"] == []
    sidecars = sorted(p.name for p in (tmp_path / "xmp").rglob("*.xmp"))
    assert len(sidecars) == 3
    again = run_json(capsys, "tags", "export-xmp", "--to", str(tmp_path / "xmp"), *lib)
    assert again["created"] == 0 and again["updated"] == 0

    code, out, _ = run_text(capsys, "tags", "retire", "样衣", *lib)
    assert code == 0 and "retired sample_garment" in out
    keys = [t["key"] for t in run_json(capsys, "tags", "list", *lib)]
    assert "sample_garment" not in keys and "booth_wall" in keys
    every = run_json(capsys, "tags", "list", "--all", *lib)
    assert next(t for t in every if t["key"] == "sample_garment")["accepted"] == 1

    refreshed = run_json(capsys, "tags", "refresh", "--retrain", *lib)
    assert refreshed["photos"] == 8 and refreshed["error"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tags", "accept", "1", "--tag", "无此标签"], "no tag named"),
        (["tags", "review", "--client", "王五"], "no client named"),
        (["tags", "accept", "--tag", "meeting"], "which photos"),
        (["tags", "accept", "1", "--all-suggested", "--tag", "meeting"], "not both"),
        (["tags", "accept", "1", "--client", "张三", "--tag", "meeting"], "go with"),
        (["tags", "add", "two words", "--zh", "两", "--en", "two"], "key must be"),
        (["tags", "edit", "meeting", "--threshold", "high"], "--threshold takes"),
        (["tags", "accept", "/no/such.jpg", "--tag", "meeting"], "neither an indexed"),
    ],
)
def test_errors_are_one_line(lib, capsys, argv, message):
    code, _out, err = run_text(capsys, *argv, *lib)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in err


def test_refresh_reuses_the_stored_calibration_unless_asked_to_recalibrate(lib, capsys):
    again = run_json(capsys, "tags", "refresh", *lib)
    assert again["photos"] == 8 and again["recalibration"] is None
    assert again["written"] == 0 and again["removed"] == 0  # nothing moved since indexing
    code, out, _err = run_text(capsys, "tags", "refresh", "--recalibrate", *lib)
    assert code == 0 and "recalibrated" in out and "asked for" in out
