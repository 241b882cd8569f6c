"""``ftrack-transfer demo``: the whole mission on an embedded sandbox studio.

With no servers and no config: start the loopback studio in a temporary folder, start
``serve`` in-process, then show, step by step, a coordinator running **accsyn Send**
from the web UI (hq to la over SFTP, hq to a vendor through accsyn), the vendor
publishing a version back (brought home by the auto-return rule), a scheduled sync of
the project to the cloud bucket (twice: the second run has nothing to do), and the
availability of every component per location as ftrack reports it. Finally every
registered file is read back at its location and compared with the original.
Exit 0 when everything arrived and verified, 1 with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from .config import load_config
from .errors import UserError
from .ftrack_session import open_session
from .journal import FINISHED
from .progress import Snapshot
from .progress_bar import ProgressBar
from .publish import publish
from .units import counted

SEND = "ftrack-transfer.send"


class DemoFailed(Exception):
    """Something did not arrive or did not verify; the message says what."""


class Demo:
    def __init__(self, directory: Path | None, console: Console, fast: bool = False) -> None:
        self.console = console
        self.fast = fast
        self.directory = directory or Path(tempfile.mkdtemp(prefix="ftrack-transfer-demo-"))
        self.expected: dict[str, set[str]] = {}  # component id -> locations it must be at
        self.studio: Any = None
        self.service: Any = None
        self.step_number = 0

    # ------------------------------------------------------------------ narration

    def step(self, title: str, text: str) -> None:
        self.step_number += 1
        self.console.rule(f"[bold]{self.step_number}. {title}")
        self.console.print(text)

    def expect(self, component_ids: list[str], location: str) -> None:
        for component_id in component_ids:
            self.expected.setdefault(component_id, set()).add(location)

    # ------------------------------------------------------------------ run

    def run(self, keep: bool = False) -> int:
        from ..sandbox.ftrack.seed import VENDOR_USER
        from ..sandbox.studio import MediaPlan, Studio

        self.vendor = VENDOR_USER
        started = time.monotonic()
        self.step(
            "A studio on loopback",
            "Starting the sandbox: an ftrack-compatible server seeded with project [bold]demo[/], "
            "an accsyn-compatible service, an SFTP server for the LA office and an S3 bucket.",
        )
        media = MediaPlan(frames=12, frame_size=128 * 1024) if self.fast else MediaPlan()
        self.studio = Studio(
            self.directory, accsyn_bandwidth=(None if self.fast else 40e6), media=media,
            transfer={"job_update_interval": "1s"},
        )  # fmt: skip
        self.studio.start()
        try:
            self._environment()
            self._start_service()
            self._coordinator_send()
            self._vendor_publish()
            self._scheduled_sync()
            self._availability_table()
            self._verify_bytes()
        except (DemoFailed, UserError) as error:
            self.console.print(f"[red bold]demo failed:[/] {error}")
            self._finish(keep)
            return 1
        self.console.rule("[green bold]Everything arrived and verified")
        self.console.print(f"The whole demo took {time.monotonic() - started:.0f} s.")
        self._finish(keep)
        return 0

    def _environment(self) -> None:
        os.environ.update(self.studio.env())
        studio = self.studio
        table = Table(title="The sandbox studio")
        for column in ("service", "where", "what it stands for"):
            table.add_column(column, overflow="fold")  # paths whole, to copy them
        table.add_row("ftrack", studio.ftrack.url, "the studio's ftrack server")
        table.add_row(
            "accsyn", studio.accsyn.url, "the accsyn workspace (sites hq, la; vendor user)"
        )
        table.add_row(
            "sftp",
            f"127.0.0.1:{studio.sftp.port} ({studio.sftp.kind})",
            "location la: the LA office",
        )
        table.add_row("s3", studio.s3.endpoint_url, "location cloud: an S3 bucket")
        table.add_row("disk", str(studio.root("hq")), "location hq: the HQ file server")
        table.add_row(
            "accsyn user", str(studio.root(self.vendor)), f"location {self.vendor}: the vendor"
        )
        self.console.print(table)

    def _start_service(self) -> None:
        from .journal import Journal
        from .service import Service

        self.step(
            "ftrack-transfer serve",
            "Starting the service that serves the [bold]accsyn Send[/] action, runs transfers, "
            "brings vendor publishes home and runs schedules.",
        )
        config = load_config(self.studio.config_path, cached=False)
        self.service = Service(
            config, journal=Journal(config.journal_path()), workers=2, scan_interval=30.0,
            housekeeping_interval=0.5, run_schedules=False,
        )  # fmt: skip
        self.service.start()
        self.console.print(f"serve is listening; journal {config.journal_path()}")

    # ------------------------------------------------------------------ 3. the coordinator

    def _coordinator_send(self) -> None:
        from ..sandbox.webui import WebUI

        info = self.studio.ftrack.seed_info
        shot = info.shots["sq010/sh0010"]
        self.step(
            "A coordinator sends a shot",
            "Alice (a coordinator) selects shot [bold]demo/sq010/sh0010[/] in the ftrack web UI, "
            "opens Actions and picks accsyn Send.",
        )
        ui = WebUI.connect(
            self.studio.ftrack.url, "alice", self.studio.ftrack.user_key("alice"),
            os.environ["FTRACK_API_SCHEMA_CACHE_PATH"],
        )  # fmt: skip
        try:
            selection = [{"entityId": shot, "entityType": "task"}]
            items = ui.discover(selection)
            labels = [item["label"] for item in items]
            self.console.print(f"Actions offered for the shot: {', '.join(labels)}")
            if not any(item["actionIdentifier"] == SEND for item in items):
                raise DemoFailed("accsyn Send was not offered to the coordinator")
            form = ui.launch(SEND, selection)
            if "items" not in form:
                raise DemoFailed(f"accsyn Send did not open its form: {form}")
            source = next(i for i in form["items"] if i.get("name") == "source")
            self.console.print(
                "The form offers sources " + ", ".join(o["label"] for o in source["data"])
                + " and destinations " + ", ".join(i["name"][3:] for i in form["items"] if i.get("name", "").startswith("to:"))
            )  # fmt: skip
            values = {
                "source": "hq", "to:la": True, f"to:{self.vendor}": True, "components": "all",
                "additional_files": "", "priority": "high", "preview": False,
            }  # fmt: skip
            self.console.print(
                f"Alice picks hq -> la (SFTP) and hq -> {self.vendor} (accsyn) and submits."
            )
            reply = ui.launch(SEND, selection, values)
            if not reply.get("success"):
                raise DemoFailed(f"accsyn Send refused the form: {reply}")
            self.console.print(f"[green]web UI:[/] {reply['message']}")
            job_id = reply["message"].split("(job ")[1].split(")")[0]
            self._follow(job_id, "accsyn Send")
            message = ui.wait_for_message(timeout=10)
            if message:
                self.console.print(f"[green]web UI notification:[/] {message['message']}")
            self._show_ftrack_job(job_id)
            components = self._components_under(shot)
            self.expect(components, "la")
            self.expect(components, self.vendor)
        finally:
            ui.close()

    # ------------------------------------------------------------------ 4. the vendor

    def _vendor_publish(self) -> None:
        self.step(
            "The vendor publishes back",
            f"Vera (the vendor, ftrack user {self.vendor}) publishes a comp of shot sh0020 at her own "
            "location: 12 frames and a movie. serve's auto-return rule sends every vendor publish home to hq.",
        )
        work = self.directory / "vendor-work"
        work.mkdir(exist_ok=True)
        size = 64 * 1024 if self.fast else 512 * 1024
        paths = []
        for frame in range(1001, 1013):
            path = work / f"sh0020_comp.{frame}.exr"
            path.write_bytes(secrets.token_bytes(size))
            paths.append(str(path))
        movie = work / "sh0020_comp.mov"
        movie.write_bytes(secrets.token_bytes(size * 4))
        paths.append(str(movie))
        config = load_config(self.studio.config_path, cached=False)
        session = open_session(
            api_user=self.vendor,
            api_key=self.studio.ftrack.user_key(self.vendor),
            connect_event_hub=True,
        )
        try:
            published = publish(
                session, config, location=self.vendor, task="demo/sq010/sh0020/compositing", asset="comp",
                paths=paths, comment="Comp from the vendor",
            )  # fmt: skip
            ids = [c["id"] for c in published.components]
        finally:
            session.close()
        self.console.print(
            f"Published {published.label}: {counted(len(ids), 'component')} at {self.vendor}."
        )
        followed: set[str] = set()
        while not self._returned(ids, followed):
            job = self._wait_for(
                lambda: self._job_for(ids, "auto-return", followed),
                30,
                "the auto-return job to start",
            )
            followed.add(job)
            self._follow(job, "auto-return")
        self.expect(ids, "hq")
        self.expect(ids, self.vendor)

    # ------------------------------------------------------------------ 5. the schedule

    def _scheduled_sync(self) -> None:
        self.step(
            "The scheduled sync to the cloud",
            "The sites config has a schedule [bold]demo-to-cloud[/] (every 15 min: everything of "
            "project demo at hq that the cloud bucket lacks). Running it now, then once more.",
        )
        result = self.service.run_schedule_now("demo-to-cloud")
        self.console.print(f"first run: [bold]{result.status}[/]: {result.summary}")
        if result.status != "done":
            raise DemoFailed(f"the scheduled sync ended {result.status}: {result.summary}")
        again = self.service.run_schedule_now("demo-to-cloud")
        self.console.print(f"second run: {again.describe()}")
        if again.status != "nothing":
            raise DemoFailed(f"the second sync should have had nothing to do, but: {again.summary}")
        session = open_session()
        try:
            rows = session.query(
                'select id from Component where version.asset.parent.project.name is "demo" and container_id is none '
                'and component_locations any (location.name is "hq")'
            ).all()
            self.expect([r["id"] for r in rows], "cloud")
        finally:
            session.close()

    # ------------------------------------------------------------------ 6. availability

    def _availability_table(self) -> None:
        self.step(
            "What is where", "Availability of every component per location, as ftrack reports it."
        )
        session = open_session()
        try:
            names = ["hq", "la", "cloud", self.vendor]
            locations = [session.query(f'Location where name is "{n}"').one() for n in names]
            components = session.query(
                "select id, name, version.version, version.asset.name, version.asset.parent.name from Component "
                'where version.asset.parent.project.name is "demo" and container_id is none'
            ).all()
            availability = session.get_component_availabilities(components, locations=locations)
            table = Table(title="Component availability (%)")
            table.add_column("component")
            for name in names:
                table.add_column(name, justify="right")
            problems = []
            for component, values in sorted(
                zip(components, availability, strict=True), key=lambda cv: self._label(cv[0])
            ):
                row = [self._label(component)]
                for name, location in zip(names, locations, strict=True):
                    value = values[location["id"]]
                    wanted = name in self.expected.get(component["id"], set())
                    style = "green" if value == 100 else ("red" if wanted else "dim")
                    row.append(f"[{style}]{value:.0f}[/]")
                    if wanted and value != 100:
                        problems.append(f"{self._label(component)} is at {value:.0f} % at {name}")
                table.add_row(*row)
            self.console.print(table)
            if problems:
                raise DemoFailed("; ".join(problems[:5]))
        finally:
            session.close()

    def _verify_bytes(self) -> None:
        """Read every registered file back at its location and compare with the original."""
        session = open_session()
        checked = 0
        try:
            names = ["hq", "la", "cloud", self.vendor]
            locations = {n: session.query(f'Location where name is "{n}"').one() for n in names}
            top = [
                r["id"]
                for r in session.query(
                    'select id from Component where version.asset.parent.project.name is "demo" and container_id is none'
                )
            ]
            quoted = ", ".join(f'"{n}"' for n in names)
            rows = []
            for start in range(0, len(top), 200):
                ids = ", ".join(top[start : start + 200])
                rows += session.query(
                    "select component_id, resource_identifier, location.name from ComponentLocation "
                    f"where location.name in ({quoted}) and (component_id in ({ids}) or component.container_id in ({ids}))"
                ).all()
            by_component: dict[str, dict[str, str]] = {}
            for row in rows:
                by_component.setdefault(row["component_id"], {})[row["location"]["name"]] = row[
                    "resource_identifier"
                ]
            for placements in by_component.values():
                digests = {}
                for name, ri in placements.items():
                    accessor = locations[name].accessor
                    if accessor.is_container(ri) or "%" in ri:
                        continue  # a sequence's own row; its members are checked one by one
                    digests[name] = _digest(accessor, ri)
                    checked += 1
                if len(set(digests.values())) > 1:
                    raise DemoFailed(f"copies differ between locations: {placements}")
        finally:
            session.close()
        self.console.print(
            f"Read back {checked} registered files at their locations: every copy matches its source."
        )

    # ------------------------------------------------------------------ helpers

    def _follow(self, job_id: str, label: str) -> None:
        journal = self.service.journal
        bar = ProgressBar(self.console, label)
        started = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = journal.job(job_id)
            progress = journal.progress(job_id)
            snapshot = Snapshot(
                job_id, progress.files_total, progress.files_done, progress.files_failed, progress.bytes_total,
                progress.bytes_done, progress.components_total, progress.components_registered, 0.0, None,
            )  # fmt: skip
            if not started and job.status in ("running", *FINISHED):
                bar.on_job_started(snapshot, job.message)
                started = True
            if started:
                bar.on_progress(snapshot)
            if job.status in FINISHED:
                bar.on_job_finished(snapshot, job.status, job.message)
                if job.status != "done":
                    raise DemoFailed(f"{label} job {job_id} ended {job.status}: {job.message}")
                return
            time.sleep(0.2)
        raise DemoFailed(f"{label} job {job_id} did not finish within two minutes")

    def _show_ftrack_job(self, job_id: str) -> None:
        import json

        job = self.service.journal.job(job_id)
        session = open_session()
        try:
            ftrack_job = session.query(
                f'select status, data, user.username from Job where id is "{job.ftrack_job_id}"'
            ).one()
            description = json.loads(ftrack_job["data"])["description"]
            self.console.print(
                Panel(
                    description,
                    title=f"ftrack Job of {ftrack_job['user']['username']}: {ftrack_job['status']}",
                ),
                soft_wrap=False,  # the console's soft wrap would crop a panel's lines
            )
        finally:
            session.close()

    def _components_under(self, context_id: str) -> list[str]:
        session = open_session()
        try:
            rows = session.query(
                f'select id from Component where version.asset.context_id is "{context_id}" and container_id is none'
            ).all()
            return [r["id"] for r in rows]
        finally:
            session.close()

    def _job_for(self, component_ids: list[str], origin: str, seen: set[str]) -> str | None:
        for job in self.service.journal.jobs(limit=20):
            if job.id in seen or job.origin != origin:
                continue
            if {r["id"] for r in job.request["selection"]} & set(component_ids):
                return job.id
        return None

    def _returned(self, component_ids: list[str], jobs: set[str]) -> bool:
        """Whether the followed jobs cover every published component."""
        covered: set[str] = set()
        for job_id in jobs:
            covered |= {r["id"] for r in self.service.journal.job(job_id).request["selection"]}
        return set(component_ids) <= covered

    @staticmethod
    def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.1)
        raise DemoFailed(f"timed out waiting for {what}")

    @staticmethod
    def _label(component: Any) -> str:
        version = component["version"]
        return f"{version['asset']['parent']['name']}/{version['asset']['name']} v{version['version']:03d} {component['name']}"

    def _finish(self, keep: bool) -> None:
        if self.service is not None:
            self.service.stop()
        if keep and self.studio is not None:
            self.console.print(
                Panel(
                    f"The sandbox keeps running. In another shell:\n\n  . {self.studio.env_path}\n"
                    "  ftrack-transfer status\n  ftrack-transfer locations --check\n"
                    "  ftrack-transfer serve            # the action service\n"
                    "  python -c 'import ftrack_api; print(ftrack_api.Session().query(\"Project\").all())'\n\n"
                    "Press Ctrl-C here to stop it.",
                    title="--keep",
                ),
                soft_wrap=False,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        if self.studio is not None:
            self.studio.stop()


def _digest(accessor: Any, resource_identifier: str) -> str:
    data = accessor.open(resource_identifier, "rb")
    digest = hashlib.sha256()
    try:
        while chunk := data.read(8 * 1024 * 1024):
            digest.update(chunk)
    finally:
        data.close()
    return digest.hexdigest()
