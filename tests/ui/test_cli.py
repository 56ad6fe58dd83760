"""The `kezhao` command end to end, through its installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_photo

KEZHAO = shutil.which("kezhao", path=str(Path(sys.executable).parent)) or "kezhao"


def run(*args: str, env_extra: dict | None = None, check: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    proc = subprocess.run([KEZHAO, *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"kezhao {' '.join(args)} failed:\n{proc.stderr}")
    return proc


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "客户照片"
    for i in range(3):
        write_photo(root / "张三" / "会议" / f"z{i}.jpg", seed=i)
    write_photo(root / "李四" / "l0.jpg", seed=10)
    (root / "李四" / "broken.jpg").write_bytes(b"")
    return root


def test_index_search_similar_clients_status(tmp_path, photos):
    lib = ["--library", str(tmp_path / "lib")]
    idx = run("index", str(photos), *lib, "--model", "tiny-test", "--json")
    summary = json.loads(idx.stdout)
    assert summary["new"] == 4 and summary["failed"] == 1
    assert summary["failures"][0]["reason"] == "empty"
    assert "NO semantic meaning" in idx.stderr

    # The library remembers its model: later commands need no --model.
    hits = json.loads(run("search", "产品展示", *lib, "--client", "张三", "--json").stdout)
    assert len(hits) == 3 and {h["client"] for h in hits} == {"张三"}
    assert {"path", "client", "taken_at", "score", "reason"} <= set(hits[0])

    text = run("search", "product demo at booth", *lib, "-k", "2").stdout
    assert len(text.strip().splitlines()) == 2

    similar = json.loads(run("similar", hits[0]["path"], *lib, "--json").stdout)
    assert hits[0]["path"] not in [h["path"] for h in similar] and len(similar) == 3
    example = shutil.copy(photos / "李四" / "l0.jpg", tmp_path / "from-chat.jpg")
    by_file = json.loads(run("similar", str(example), *lib, "--json", "-k", "1").stdout)
    assert by_file[0]["path"] == str(photos / "李四" / "l0.jpg")

    clients = json.loads(run("clients", *lib, "--json").stdout)
    assert clients == [{"client": "张三", "photos": 3}, {"client": "李四", "photos": 1}]

    status = json.loads(run("status", *lib, "--json").stdout)
    assert status["photos"]["ok"] == 4 and status["failures"] == {"empty": 1}
    assert status["model"].startswith("tiny-test") and status["index"]["vectors"] == 4

    failures = json.loads(run("failures", *lib, "--json").stdout)
    assert failures[0]["path"].endswith("broken.jpg")

    run("set-client", hits[0]["path"], "--to", "王五", *lib)
    clients = json.loads(run("clients", *lib, "--json").stdout)
    assert {"client": "王五", "photos": 1} in clients


def test_errors_are_one_line_without_traceback(tmp_path, photos):
    lib = ["--library", str(tmp_path / "lib")]
    run("index", str(photos), *lib, "--model", "tiny-test")
    for args in (["search", "", *lib], ["search", "x", "--client", "无此客户", *lib],
                 ["similar", "/no/such/file.jpg", *lib],
                 ["search", "x", "--model", "english", *lib]):
        proc = run(*args, check=False)
        assert proc.returncode == 2, args
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, args
    bad_date = run("search", "x", "--since", "yesterday", *lib, check=False)
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr


def test_missing_weights_offline_says_what_to_do(tmp_path, photos):
    proc = run("index", str(photos), "--library", str(tmp_path / "lib"),
               "--model", "multilingual", check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "multilingual" in proc.stderr and "kezhao models download" in proc.stderr
    assert str(tmp_path / "lib" / "models") in proc.stderr


def test_checkpoint_of_tiny_model_loads(tmp_path, photos, tiny_encoder):
    from models import save_checkpoint

    ckpt = save_checkpoint(tiny_encoder, tmp_path / "tiny.pt")
    lib = ["--library", str(tmp_path / "lib"), "--model", "tiny-test",
           "--checkpoint", str(ckpt)]
    run("index", str(photos), *lib)
    status = json.loads(run("status", *lib, "--json").stdout)
    assert "@checkpoint:" in status["model"]
    assert len(json.loads(run("search", "会议", *lib, "--json").stdout)) == 4


def test_library_from_environment(tmp_path, photos):
    env = {"KEZHAO_LIBRARY": str(tmp_path / "envlib"), "KEZHAO_MODEL": "tiny-test"}
    run("index", str(photos), env_extra=env)
    assert (tmp_path / "envlib" / "catalog.db").exists()


def test_help_lists_every_command():
    out = run("--help").stdout
    for command in ("index", "search", "similar", "clients", "status", "failures",
                    "set-client", "models", "ui"):
        assert command in out


def test_readme_tour_matches_the_cli():
    """The README's command tour must not go stale: every command it shows exists."""
    import re

    from ui.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    tour = readme.split("## A short tour of the command line", 1)[1].split("```", 2)[1]
    shown = set(re.findall(r"^kezhao ([a-z-]+)", tour, flags=re.M))
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert shown and shown <= set(sub.choices), shown - set(sub.choices)
