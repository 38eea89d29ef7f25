"""The per-sitting documents of central storage (``examkiosk_wire.central``): what a reader accepts and
what it refuses, with the key named."""
from __future__ import annotations

import pytest

from examkiosk_wire import central

LOTS = central.LotMap(format=central.LOTS_FORMAT, centre="c1", sitting="s1", lots={"7": "T-0007"})
SITTING = central.SittingManifest(format=central.SITTING_FORMAT, centre="c1", sitting="s1", expected=3, absent=1)
PARSERS = [(central.parse_lot_map, LOTS, "c1/s1/lots.json"),
           (central.parse_sitting_manifest, SITTING, "c1/s1/sitting.json")]


@pytest.mark.parametrize(("parse", "document", "key"), PARSERS)
def test_a_document_where_it_belongs_reads_back_as_written(parse, document, key):
    assert parse(key, central.dump(document)) == document


@pytest.mark.parametrize(("parse", "document", "key"), PARSERS)
def test_a_document_in_another_sittings_folder_is_refused(parse, document, key):
    elsewhere = key.replace("c1/s1/", "c2/s1/")
    with pytest.raises(central.ManifestError, match=r"describes c1/s1/, not the folder it was found in") as info:
        parse(elsewhere, central.dump(document))
    assert info.value.key == elsewhere


@pytest.mark.parametrize(("parse", "document", "key"), PARSERS)
def test_a_truncated_or_foreign_document_is_refused(parse, document, key):
    data = central.dump(document)
    with pytest.raises(central.ManifestError, match="is not JSON"):
        parse(key, data[: len(data) // 2])
    with pytest.raises(central.ManifestError, match="format 'examkiosk-manifest/1'"):
        parse(key, data.replace(document.format.encode(), central.ATTEMPT_FORMAT.encode()))
