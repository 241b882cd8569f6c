"""ftrack requests per send do not grow per component or per file: a constant plus about
one query page and one registration commit per 1,000 components."""

from __future__ import annotations

from ftrack_transfer.transfer.engine import JobRunner, submit
from ftrack_transfer.transfer.ftrack_session import session_factory
from ftrack_transfer.transfer.selection import EntityRef

from tests.fixtures.studio import StudioCase


def requests_for(studio: StudioCase, versions: list[str]) -> int:
    journal = studio.journal()
    job_id = submit(
        journal, source=studio.names["hq"], destinations=[studio.names["la"]],
        selection=[EntityRef("AssetVersion", v) for v in versions], origin="test", username="pipeline",
        user_id=None,
    )  # fmt: skip
    before = studio.server.stats
    assert JobRunner(journal, studio.config, session_factory(), job_id).run() == "done"
    return (studio.server.stats - before).requests


def test_requests_per_send_do_not_grow_with_components_or_frames(studio: StudioCase) -> None:
    # Progress updates are paced by time, not by files: keep them out of the count.
    studio.config_path.write_text(
        studio.config_path.read_text().replace(
            'job_update_interval = "200ms"', 'job_update_interval = "1h"'
        )
    )
    small = [studio.publish(files={"main": 10}, sequences={"plate": (2, 10)}).version_id]
    large = [studio.publish(files={"a": 10, "b": 10, "c": 10}, sequences={"plate": (25, 10)}).version_id
             for _ in range(20)]  # fmt: skip
    few = requests_for(studio, small)  # 2 components, 3 files
    many = requests_for(studio, large)  # 80 components, 560 files
    # 640 ComponentLocations fit one registration commit, 80 components one query page.
    assert many <= few, (few, many)


def test_registration_commits_do_not_grow_with_the_time_a_send_takes(studio: StudioCase) -> None:
    # No interval: pacing by time alone would commit after every frame that lands, as it
    # would on a link slow enough to take seconds per frame.
    studio.edit_config(
        lambda text: text.replace('job_update_interval = "200ms"', 'job_update_interval = "0s"')
    )
    published = studio.publish(sequences={"plate": (200, 10)})
    studio.server.reset_stats()
    requests_for(studio, [published.version_id])

    commits = [
        batch
        for batch in studio.server.request_log
        if any(op.get("entity_type") == "ComponentLocation" for op in batch)
    ]
    # 201 components (200 frames and their sequence): a paced commit waits for a tenth,
    # so availability still grows in steps while the frames arrive.
    assert 5 <= len(commits) <= 11, len(commits)
    assert studio.availability([published.components["plate"]], "la") == [100.0]
