"""The bilingual tag vocabulary: the shipped file is sound, and a bad one is refused with a
message that names the entry at fault."""

from __future__ import annotations

import json
import re

import pytest

from models.vocabulary import (
    KEY_PATTERN,
    VocabularyError,
    load_vocabulary,
    parse_vocabulary,
    tag_problems,
)


def _entry(key="meeting", zh="会议", en="meeting", prompts=("a photo of a business meeting",)):
    return {"key": key, "zh": zh, "en": en, "prompts": list(prompts)}


def test_builtin_vocabulary_is_complete_and_bilingual():
    vocab = load_vocabulary()
    assert len(vocab) >= 40
    keys = vocab.keys()
    assert len(keys) == len(set(keys))
    assert len({t.label_zh for t in vocab.tags}) == len(vocab)
    for tag in vocab.tags:
        assert KEY_PATTERN.match(tag.key) and tag.key.isascii(), tag.key
        assert re.search(r"[\u4e00-\u9fff]", tag.label_zh), tag.key
        assert tag.label_en.isascii() and tag.label_en.strip(), tag.key
        assert len(tag.prompts) >= 3, f"{tag.key}: a prompt ensemble needs several phrasings"
        assert len(set(tag.prompts)) == len(tag.prompts), tag.key


def test_builtin_vocabulary_covers_client_photo_work():
    vocab = load_vocabulary()
    zh = {t.label_zh: t for t in vocab.tags}
    for label in ("会议", "产品展示", "签约", "合影", "人像", "演讲", "培训", "客户拜访", "仓库",
                  "办公室", "门店", "宴会", "颁奖", "户外活动", "样品", "包装", "施工现场", "设备",
                  "文件", "名片", "白板", "屏幕截图", "收据发票", "证件"):
        assert label in zh, label
    assert zh["会议"].label_en == "meeting"
    assert vocab.get("trade_show_booth").label_zh == "展会展台"


def test_duplicate_key_is_refused_naming_both_entries():
    data = {"tags": [_entry(), _entry(zh="开会")]}
    with pytest.raises(VocabularyError, match=r"tag #2 \('meeting'\): duplicate key.*#1"):
        parse_vocabulary(data)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_entry(zh=""), "missing zh label"),
        ({"key": "meeting", "en": "meeting", "prompts": ["x"]}, "missing zh label"),
        (_entry(en="  "), "missing en label"),
        (_entry(prompts=()), "needs at least one prompt"),
        (_entry(prompts=("",)), "non-empty strings"),
        (_entry(key="two words"), "key must be"),
        (_entry(en="a|b"), "without '|'"),
    ],
)
def test_bad_entries_are_refused_with_a_reason(entry, problem):
    data = {"tags": [_entry(key="ok"), entry]}
    with pytest.raises(VocabularyError) as err:
        parse_vocabulary(data, "my.json")
    message = str(err.value)
    assert message.startswith("my.json: tag #2")
    assert problem in message
    assert "\n" not in message


def test_file_errors_are_one_clear_line(tmp_path):
    broken = tmp_path / "vocab.json"
    broken.write_text('{"tags": [', encoding="utf-8")
    with pytest.raises(VocabularyError, match="not valid JSON"):
        load_vocabulary(broken)
    with pytest.raises(VocabularyError, match="cannot read"):
        load_vocabulary(tmp_path / "missing.json")
    with pytest.raises(VocabularyError, match="'tags' list"):
        parse_vocabulary({"tag": []})


def test_a_valid_file_loads_and_its_fingerprint_follows_its_content(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"version": 2, "tags": [_entry()]}, ensure_ascii=False),
                    encoding="utf-8")
    vocab = load_vocabulary(path)
    assert vocab.version == 2 and vocab.get("meeting").prompts == ("a photo of a business meeting",)
    same = parse_vocabulary({"tags": [_entry()]})
    changed = parse_vocabulary({"tags": [_entry(prompts=("people in a meeting room",))]})
    assert vocab.fingerprint() == same.fingerprint() != changed.fingerprint()


def test_user_tags_may_have_no_prompts():
    assert tag_problems("样衣", "样衣", "sample garment", [], require_prompts=False) == []
    assert tag_problems("样衣", "样衣", "sample garment", []) == ["needs at least one prompt"]
