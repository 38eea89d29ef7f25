"""What a failure looks like from outside: JSON refusals on the API, and every 500 logged with its traceback."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_500_is_json_on_the_api_and_its_traceback_reaches_stdout(tmp_path):
    """In a process that configured no logging (as under gunicorn), a view that raises answers the
    API's JSON and its traceback is printed on stdout, for journald."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from edge_server import create_app
        from edge_server.api import routes
        from edge_server.config import load_settings
        from edge_server.extensions import db
        from edge_server.models import Base
        from tests.edge_server.helpers import make_station

        settings = load_settings(Path("/nonexistent/edge.toml"), secret_key="s" * 32,
                                 database_url="sqlite:///{tmp_path}/edge.db", data_dir="{tmp_path}/data",
                                 discovery={{"enabled": False}})
        app = create_app(settings)
        with app.app_context():
            Base.metadata.create_all(db.engine)
            _, token = make_station(db.session, "c1", "st-01")
            db.session.commit()

        def broken():
            raise RuntimeError("the clock fell off the wall")

        routes.server_time = broken
        resp = app.test_client().get("/api/v1/time", headers={{"Authorization": f"Bearer {{token}}"}})
        print("STATUS", resp.status_code, resp.get_json())
        resp = app.test_client().get("/api/v1/no-such-route")
        print("MISSING", resp.status_code, resp.get_json())
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "STATUS 500 {'code': 'internal_error', 'error': 'internal server error'}" in result.stdout
    assert "MISSING 404 {'code': 'not_found'" in result.stdout
    assert "Traceback (most recent call last)" in result.stdout and "the clock fell off the wall" in result.stdout
    assert "ERROR edge_server: Exception on /api/v1/time [GET]" in result.stdout
