"""What the coordinator sees while a send runs: availability that grows as a sequence
arrives, and a Job description with files, percent, MB/s and ETA at a bounded rate."""

from __future__ import annotations

import json

from ftrack_transfer.transfer.engine import JobRunner, submit
from ftrack_transfer.transfer.ftrack_session import session_factory
from ftrack_transfer.transfer.progress import Subscriber
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.studio import StudioCase


class Watch(Subscriber):
    """Asks ftrack, from another session, how much of the sequence is available each
    time the registrar says components became available."""

    def __init__(self, studio: StudioCase, component_id: str) -> None:
        self.studio = studio
        self.component_id = component_id
        self.seen: list[float] = []

    def on_components_available(
        self, job_id: str, destination: str, component_ids: list[str]
    ) -> None:
        self.seen.append(self.studio.availability([self.component_id], "la")[0])


def test_a_sequence_becomes_available_while_it_arrives_and_the_job_reports_progress(
    studio: StudioCase,
) -> None:
    studio.throttle("1MB/s")
    studio.edit_config(lambda text: text.replace("files_in_flight = 8", "files_in_flight = 2"))
    published = studio.publish(sequences={"plate": (40, 64 * 1024)})
    plate = published.components["plate"]
    journal = studio.journal()
    job_id = submit(
        journal, source=studio.names["hq"], destinations=[studio.names["la"]],
        selection=[EntityRef("AssetVersion", published.version_id)], origin="test", username="pipeline",
        user_id=None, title="progress test",
    )  # fmt: skip
    watch = Watch(studio, plate)
    studio.server.reset_stats()
    assert (
        JobRunner(journal, studio.config, session_factory(), job_id, subscribers=[watch]).run()
        == "done"
    )

    partial = [value for value in watch.seen if 0 < value < 100]
    assert len(partial) >= 2, watch.seen
    assert partial == sorted(partial), "availability never goes back"
    assert watch.seen[-1] == 100.0

    ftrack_job_id = journal.job(job_id).ftrack_job_id
    descriptions = [
        json.loads(op["entity_data"]["data"])["description"]
        for batch in studio.server.request_log
        for op in batch
        if op.get("action") == "update" and op.get("entity_type") == "Job"
        and op["entity_key"] == [ftrack_job_id] and "data" in op.get("entity_data", {})
    ]  # fmt: skip
    running = [
        d for d in descriptions if " of 40 files" in d and "MB/s" in d and "ETA" in d and "%" in d
    ]
    assert len(running) >= 3, descriptions
    # About 2.6 s of transfer with a 0.2 s interval: throttled, not one update per file.
    assert len(descriptions) <= 30, len(descriptions)
    assert descriptions[-1].startswith("progress test: sent 1 component (40 files")
