"""Question files for the player: ranges from a directory (206, 416, 304), a presigned URL on S3
(Ceph RADOS Gateway) that answers ranges itself, and nothing served that the manifest does not list."""
from __future__ import annotations

import pytest
import requests

from region_server.models import Role
from tests.region_server import review_world as world
from tests.region_server.helpers import make_user, sign_in

KEY = "c-north/s-am/lot-007/questions/main_q1.mp4"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_directory_store_answers_ranges(app, central):
    written = world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "reviewer", Role.REVIEWER)
    _, attempts = world.ids(app)
    client = sign_in(app, "reviewer")
    url = f"/review/attempts/{attempts[7]}/media/main_q1.mp4"
    data = written.files[KEY]

    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == data and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.mimetype == "video/mp4"
    part = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.data == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.data == data[-100:]
    assert client.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    assert client.get(url, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    # Only the files the manifest lists, by their own name: no other key, no climbing out.
    assert client.get(f"/review/attempts/{attempts[7]}/media/manifest.json").status_code == 404
    assert client.get(f"/review/attempts/{attempts[7]}/media/..%2F..%2Flots.json").status_code == 404
    make_user(app, "marker", Role.MARKER)
    assert sign_in(app, "marker").get(url).status_code == 403  # markers reach media only through their assigned lots


@pytest.mark.parametrize("central", ["s3"], indirect=True)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_s3_the_player_is_sent_to_a_presigned_url_that_answers_ranges(app, central, ceph_s3):
    written = world.write_sitting(central.writer.put, lots=(7,))
    world.index(app)
    make_user(app, "reviewer", Role.REVIEWER)
    _, attempts = world.ids(app)
    resp = sign_in(app, "reviewer").get(f"/review/attempts/{attempts[7]}/media/main_q1.mp4")
    assert resp.status_code == 302 and resp.headers["Location"].startswith(ceph_s3.endpoint)
    part = requests.get(resp.headers["Location"], headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == written.files[KEY][100:200]
