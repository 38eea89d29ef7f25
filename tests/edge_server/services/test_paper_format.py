"""The paper file format (JSON, YAML, ZIP with images) and the sealed blob (AES-256-GCM)."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from edge_server.services.paper_format import PaperFormatError, parse_paper_file
from examkiosk_wire import sealed

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(40))

YAML = """\
title: 结构化面谈
instructions: 每题回答完毕后请说“回答完毕”。
questions:
  - text: 请谈谈你对服务基层的理解。
    seconds: 300
    pages: [材料一：某县的做法。]
  - text: 如何处理与同事的分歧？
    seconds: 240
"""


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def problems_of(filename: str, data: bytes) -> list[str]:
    with pytest.raises(PaperFormatError) as info:
        parse_paper_file(filename, data)
    return info.value.problems


def test_yaml_and_json_give_the_same_paper():
    from_yaml = parse_paper_file("paper.yaml", YAML.encode())
    import yaml

    from_json = parse_paper_file("paper.json", json.dumps(yaml.safe_load(YAML), ensure_ascii=False).encode())
    assert from_yaml == from_json
    assert from_yaml.title == "结构化面谈" and from_yaml.question_seconds == [300, 240]
    assert from_yaml.questions[0].pages == ("材料一：某县的做法。",) and from_yaml.questions[1].position == 2


def test_a_zip_carries_the_images_the_paper_names():
    doc = YAML.replace("    seconds: 240\n", "    seconds: 240\n    images: [figures/chart.png]\n")
    paper = parse_paper_file("paper.zip", zipped({"paper.yaml": doc.encode(), "figures/chart.png": PNG}))
    image = paper.questions[1].images[0]
    assert (image.name, image.media_type, image.data) == ("chart.png", "image/png", PNG)
    plain = json.loads(paper.to_plaintext())
    assert plain["questions"][1]["images"][0]["data"] == sealed.b64(PNG)


def test_every_problem_is_named_where_it_is():
    bad = """\
title: ""
questions:
  - text: 第一题
    secs: 300
  - text: 第二题
    seconds: 5
  - seconds: 60
    pages: [""]
"""
    problems = problems_of("paper.yaml", bad.encode())
    assert "title: required, a non-empty text" in problems
    assert "questions[1]: unknown key 'secs' (allowed: text, seconds, pages, images)" in problems
    assert any(p.startswith("questions[1].seconds: required") for p in problems)
    assert "questions[2].seconds: 5 is not whole seconds from 10 to 7200" in problems
    assert "questions[3].text: required, a non-empty text" in problems
    assert "questions[3].pages[1]: must be a non-empty text" in problems
    assert len(problems) == 6


@pytest.mark.parametrize("filename, data, expected", [
    ("paper.json", b'{"title": "x", "questions": [', "the file is not valid JSON: line 1 column"),
    ("paper.yaml", b"title: [unclosed\nquestions: x", "the file is not valid YAML: line"),
    ("paper.yaml", "title: x".encode("utf-16"), "the file: not UTF-8 text"),
    ("paper.txt", b"title: x", "paper.txt: not a paper file; upload a .json, .yaml/.yml or .zip file"),
    ("paper.json", b"", "the file is empty"),
    ("paper.json", b"[1, 2]", "the paper must be a mapping"),
    ("paper.yaml", b"title: t\nquestions:\n  - text: q\n    seconds: 60\n    images: [a.png]\n",
     "questions[1].images[1]: 'a.png': images come in a ZIP archive with the paper; upload a .zip"),
])
def test_unreadable_files_say_why(filename, data, expected):
    assert any(p.startswith(expected) for p in problems_of(filename, data)), problems_of(filename, data)


def test_zip_problems():
    doc = b"title: t\nquestions:\n  - text: q\n    seconds: 60\n    images: [missing.png, notes.txt]\n"
    problems = problems_of("p.zip", zipped({"paper.yaml": doc, "notes.txt": b"hello"}))
    assert problems == ["questions[1].images[1]: 'missing.png' is not in the ZIP archive",
                        "questions[1].images[2]: 'notes.txt' is not a PNG, JPEG, GIF or WebP image"]
    assert problems_of("p.zip", zipped({"readme.md": b"x"})) == [
        "the ZIP archive must hold exactly one of paper.json, paper.yaml, paper.yml at its root (found: none)"]
    assert problems_of("p.zip", b"PK\x03\x04 truncated") == ["the file is not a readable ZIP archive"]


def test_the_sealed_blob_opens_only_with_its_key_and_sitting():
    plaintext = parse_paper_file("paper.yaml", YAML.encode()).to_plaintext()
    key, blob = sealed.seal(plaintext, "sit-1")
    assert len(key) == 32 and len(blob.nonce) == 12
    assert "服务基层".encode() not in blob.ciphertext
    assert sealed.open_paper(key, blob, "sit-1")["questions"][0]["text"] == "请谈谈你对服务基层的理解。"
    key2, blob2 = sealed.seal(plaintext, "sit-1")
    assert key2 != key and blob2.nonce != blob.nonce  # fresh key and nonce every time
    tampered = sealed.SealedBlob(blob.ciphertext[:-1] + bytes([blob.ciphertext[-1] ^ 1]), blob.nonce)
    for args in ((key, tampered, "sit-1"), (key, blob, "sit-2"), (key2, blob, "sit-1")):
        with pytest.raises(sealed.SealError, match="failed its integrity check"):
            sealed.open_paper(*args)
    with pytest.raises(sealed.SealError, match="32 bytes"):
        sealed.unseal(key[:16], blob, "sit-1")
