"""Flask CLI commands: `flask create-admin`, `flask audit-verify`, `flask tls-certificate`, `flask broker-config`,
`flask demo-seed`."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path

import click
from flask import Flask

from edge_server import auth
from edge_server.errors import EdgeError
from edge_server.extensions import db
from edge_server.identity import edge_fingerprint
from edge_server.models import Centre, StaffRole, TimingMode
from edge_server.services import broker
from edge_server.services.audit import verify
from edge_server.services.demo import seed_demo
from edge_server.services.staff import create_user
from examkiosk_wire.broker import MqttProvisioningError, included_by, install_broker_config


def register(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.option("--username", required=True)
    @click.option("--role", type=click.Choice([r.value for r in StaffRole]), default=StaffRole.CENTRE_ADMIN.value)
    @click.option("--password", envvar="EXAMKIOSK_ADMIN_PASSWORD", default=None,
                  help="default: a random password, printed once")
    def create_admin(username: str, role: str, password: str | None) -> None:
        """Create a staff account. There is never a default password."""
        settings = auth.settings(app)
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        if db.session.get(Centre, settings.centre) is None:
            db.session.add(Centre(id=settings.centre, name=settings.centre_name))
        try:
            create_user(db.session, username, password, StaffRole(role), settings.centre)
        except EdgeError as exc:
            raise click.ClickException(exc.message) from exc
        db.session.commit()
        click.echo(json.dumps({"username": username, "role": role,
                               "password": password if generated else "(as given)"}))

    @app.cli.command("audit-verify")
    def audit_verify() -> None:
        """Check the audit log's hash chain; exit 1 naming every changed, deleted or inserted row."""
        problems = verify(db.session)
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            raise SystemExit(1)
        click.echo("audit log intact")

    @app.cli.command("tls-certificate")
    def tls_certificate() -> None:
        """Create the edge's TLS certificate unless it exists; print its path and SHA-256 fingerprint."""
        settings = auth.settings(app)
        fp = edge_fingerprint(settings).upper()
        click.echo(f"{settings.tls_path} sha256 {':'.join(fp[i:i + 2] for i in range(0, len(fp), 2))}")

    @app.cli.command("broker-config")
    @click.option("--conf-file", type=click.Path(path_type=Path), default=Path("/etc/mosquitto/conf.d/examkiosk.conf"),
                  show_default=True, help="the centre's part of the system Mosquitto's configuration")
    @click.option("--dynsec-file", type=click.Path(path_type=Path),
                  default=Path("/var/lib/mosquitto/examkiosk/dynamic-security.json"), show_default=True,
                  help="the dynamic-security plugin's file (users, roles); kept if it exists")
    @click.option("--bind", default="0.0.0.0", show_default=True, help="address the stations reach the broker at")
    @click.option("--main-conf", type=click.Path(path_type=Path), default=Path("/etc/mosquitto/mosquitto.conf"),
                  show_default=True, help="the system Mosquitto's own file, which must include --conf-file's folder")
    @click.option("--check", is_flag=True, help="only check that the edge can manage the running broker's users")
    def broker_config(conf_file: Path, dynsec_file: Path, bind: str, main_conf: Path, check: bool) -> None:
        """Set up Mosquitto for this centre (as root, then restart mosquitto), or --check it."""
        settings = auth.settings(app)
        mqtt = settings.mqtt
        if check:
            try:
                users = broker.station_users(settings)
            except broker.BrokerError as exc:
                raise click.ClickException(exc.message) from exc
            click.echo(f"the edge manages the broker's users at {mqtt.host}:{mqtt.port} as {mqtt.username!r}: "
                       f"{len(users)} user(s)")
            return
        if not mqtt.username:
            raise click.ClickException("mqtt.username and mqtt.password must be set in the edge's configuration")
        try:
            made = install_broker_config(conf_file=conf_file, dynsec_file=dynsec_file, port=mqtt.port, bind=bind,
                                         centre=settings.centre, edge_user=mqtt.username, edge_password=mqtt.password,
                                         tls_port=mqtt.tls_port, tls_pem=settings.tls_path)
        except (MqttProvisioningError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        listeners = (f"stations on TLS {bind}:{mqtt.tls_port}, the edge on 127.0.0.1:{mqtt.port}" if mqtt.tls_port
                     else f"listener {bind}:{mqtt.port}")
        click.echo(f"wrote {conf_file} ({listeners}); {dynsec_file} "
                   f"{'made with the edge as admin' if made else 'kept'}")
        if not mqtt.tls_port:
            click.echo("warning: mqtt.tls_port is not set: stations' MQTT logins and commands cross the LAN in "
                       "clear (set it, e.g. 8883, and run this again)", err=True)
        problem = included_by(main_conf, conf_file)
        if problem:
            click.echo(f"warning: {problem}", err=True)
        click.echo("now: systemctl restart mosquitto; then check with: flask --app edge_server:create_app "
                   "broker-config --check")

    @app.cli.command("demo-seed")
    @click.option("--start-in", type=float, default=180.0)
    @click.option("--question-seconds", type=int, default=60)
    @click.option("--station", "stations", multiple=True, required=True, metavar="ID:TOKEN",
                  help="a demo station and its API token; repeatable")
    @click.option("--assets", type=click.Path(path_type=Path), required=True,
                  help="directory with enrolled_obama.jpg and enrolled_biden.jpg")
    @click.option("--timing-mode", type=click.Choice(["per_question", "whole_session"]), default="per_question")
    @click.option("--extra-candidates", type=int, default=0, help="more candidates enrolled with the matching face")
    def demo_seed(start_in: float, question_seconds: int, stations: tuple[str, ...], assets: Path,
                  timing_mode: str, extra_candidates: int) -> None:
        """Create the demo sitting, candidates and station."""
        settings = auth.settings(app)
        if not all(":" in s for s in stations):
            raise click.BadParameter("expected ID:TOKEN", param_hint="--station")
        demo = seed_demo(
            db.session, now=datetime.now(timezone.utc), centre_id=settings.centre, centre_name=settings.centre_name,
            photos={"obama": assets / "enrolled_obama.jpg", "biden": assets / "enrolled_biden.jpg"},
            photos_dir=settings.data_dir / "photos", data_dir=settings.data_dir, stations=dict(s.split(":", 1) for s in stations),
            start_in=start_in, question_seconds=question_seconds, timing_mode=TimingMode(timing_mode),
            extra_candidates=extra_candidates,
        )
        db.session.commit()
        click.echo(json.dumps({"sitting": demo.sitting, "stations": demo.stations, "tickets": demo.tickets}))
