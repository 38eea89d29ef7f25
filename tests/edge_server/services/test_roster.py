"""The uploaded candidate list, checked without a database: ID checksums, the CSV, the ZIP's names."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

from edge_server.services import roster
from edge_server.services.id_numbers import check_char, id_number_problem


@pytest.mark.parametrize("value", ["510902198909082879", "11010519491231002X", "11010519491231002x"])
def test_valid_id_numbers(value):
    assert id_number_problem(value) is None


@pytest.mark.parametrize("value, why", [
    ("510902198909082878", "checksum"), ("110105194912310021", "checksum"), ("51090219890908287", "length"),
    ("51090219890908287Y", "characters"), ("510902198913082872", "birth_date"),
])
def test_bad_id_numbers(value, why):
    assert id_number_problem(value) == why


def test_check_char_follows_gb_11643():
    assert check_char("51090219890908287") == "9" and check_char("11010519491231002") == "X"


def zip_of(*names: str) -> zipfile.ZipFile:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name in names:
            archive.writestr(name, b"\xff\xd8 not really a jpeg")
    data.seek(0)
    return zipfile.ZipFile(data)


def test_csv_with_bom_and_chinese_headers():
    data = "\ufeff姓名,准考证号,身份证号,备注\n张明,20240001,510902198909082879,x\n\n李华,20240002,,\n".encode()
    assert roster.parse_csv(data) == [
        (2, {"ticket_no": "20240001", "name": "张明", "id_number": "510902198909082879"}),
        (4, {"ticket_no": "20240002", "name": "李华", "id_number": ""}),
    ]


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), ("ticket_no,name\n1,a\n".encode(), "lacks the column(s): id_number"),
    ("ticket_no,name,id_number\n".encode(), "no candidates"), ("准考证号,姓名\n".encode("gbk"), "not UTF-8"),
])
def test_unusable_csv(data, message):
    with pytest.raises(roster.RosterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        roster.parse_csv(data)


@pytest.mark.parametrize("name", ["../x.jpg", "photos/../../20240001.jpg", "/etc/20240001.jpg",
                                  "..\\20240001.jpg", "C:\\photos\\20240001.jpg", "c:/20240001.jpg"])
def test_zip_entries_that_climb_out_or_are_absolute_refuse_the_zip(name):
    with pytest.raises(roster.RosterError, match="Unsafe file name") as caught:
        roster.photo_entries(zip_of("20240002.jpg", name))
    assert caught.value.code == "unsafe_zip_entry"


def test_zip_symlinks_refuse_the_zip():
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        link = zipfile.ZipInfo("20240001.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    data.seek(0)
    with pytest.raises(roster.RosterError, match="symbolic link"):
        roster.photo_entries(zipfile.ZipFile(data))


def test_rows_report_every_problem():
    records = roster.parse_csv("\n".join([
        "ticket_no,name,id_number",
        "20240001,张明,510902198909082879",  # fine
        "20240002,李华,510902198909082878",  # checksum
        "20240003,王芳,510902198909082879",  # no photo
        "20240004,赵强,510902198909082879",  # duplicate of line 6
        "20240005,,510902198909082879",      # no name; already enrolled
        "20240004,钱六,510902198909082879",  # duplicate of line 5
        "bad ticket!,孙七,510902198909082879",
        "20240008,周八,510902198909082879",  # two photos
    ]).encode())
    photos = roster.photo_entries(zip_of("a/20240001.jpg", "20240002.JPG", "20240004.png", "20240005.jpg",
                                         "20240008.jpg", "x/20240008.jpeg", "notes.txt", "__MACOSX/._20240001.jpg"))
    rows = roster.check_rows(records, photos, enrolled={"20240005"})
    codes = {row.line: [p["code"] for p in row.problems] for row in rows}
    assert codes == {
        2: [], 3: ["bad_id_number"], 4: ["missing_photo"], 5: ["duplicate_ticket"],
        6: ["missing_field", "ticket_exists"], 7: ["duplicate_ticket"], 8: ["bad_ticket", "missing_photo"],
        9: ["two_photos"],
    }
    assert rows[0].photo == "a/20240001.jpg"
    assert "also on line 7" in rows[3].problems[0]["text"] and "checksum" in rows[1].problems[0]["text"]


def test_a_name_with_a_nul_or_a_control_character_is_a_problem():
    """A NUL (PostgreSQL cannot store it) or another control character is never imported as a name."""
    records = roster.parse_csv("ticket_no,name,id_number\n20240001,张\x00明,510902198909082879\n"
                               "20240002,李\x1b华,510902198909082879\n20240003,王芳,510902198909082879\n".encode())
    rows = roster.check_rows(records, roster.photo_entries(zip_of("20240001.jpg", "20240002.jpg", "20240003.jpg")),
                             enrolled=set())
    assert [[p["code"] for p in row.problems] for row in rows] == [["bad_name"], ["bad_name"], []]
