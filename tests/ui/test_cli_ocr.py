"""`kezhao index --ocr`, `kezhao ocr`, `kezhao search` with text, and `kezhao show`.

OCR uses the real offline PP-OCR models; CLIP uses the tiny random model (NO semantics),
so only text evidence decides the first hit here.
"""

from __future__ import annotations

import json

import pytest

from tests.ocr_helpers import plain_photo, text_photo
from tests.ui.test_cli import run


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "客户照片"
    text_photo(root / "张三" / "拜访" / "acme.jpg", "客户拜访 ACME")
    for i in range(2):
        plain_photo(root / "李四" / f"l{i}.jpg", seed=60 + i)
    return root


def test_index_with_ocr_then_search_show_and_rerun(tmp_path, photos):
    lib = ["--library", str(tmp_path / "lib")]
    indexed = json.loads(
        run("index", str(photos), *lib, "--model", "tiny-test", "--ocr", "--json").stdout
    )
    assert indexed["new"] == 3
    assert indexed["ocr"]["with_text"] == 1 and indexed["ocr"]["without_text"] == 2

    out = run("search", "拜访", *lib).stdout.splitlines()
    assert "acme.jpg" in out[0] and "[text: '客户拜访ACME'; image similarity" in out[0]
    hits = json.loads(run("search", "ACME", *lib, "--client", "李四", "--json").stdout)
    assert len(hits) == 2 and all(h["client"] == "李四" for h in hits)

    text_only = json.loads(run("search", "客户拜访", *lib, "--text-only", "--json").stdout)
    assert [h["reason"] for h in text_only] == ["text: '客户拜访ACME'"]
    photo_id = text_only[0]["id"]

    shown = run("show", str(photo_id), *lib).stdout
    assert "client   张三 (folder)" in shown and "客户拜访ACME" in shown
    details = json.loads(run("show", str(photos / "张三" / "拜访" / "acme.jpg"), *lib,
                             "--json").stdout)
    assert details["id"] == photo_id and details["text"]["state"] == "text"
    assert details["text"]["lines"][0]["text"] == "客户拜访ACME"
    assert len(details["text"]["lines"][0]["box"]) == 4

    again = json.loads(run("ocr", *lib, "--json").stdout)
    assert again["read"] == 0 and again["library"] == {"text": 1, "no_text": 2}


def test_show_and_search_errors_are_one_line(tmp_path, photos):
    lib = ["--library", str(tmp_path / "lib")]
    run("index", str(photos), *lib, "--model", "tiny-test")
    for args in (["show", "999", *lib], ["search", "x", "--text-only", "--client", "王五", *lib]):
        proc = run(*args, check=False)
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    unread = run("show", "1", *lib).stdout
    assert "not read yet (run `kezhao ocr`)" in unread
