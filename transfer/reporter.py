"""The ftrack Job of a send: what the coordinator watches in the web UI.

One Job per send, created for the user who asked. Its description is updated at a
throttled rate with files done, percent, MB/s and ETA, and at the end says what moved
or, on failure, which file failed where and why. ftrack Jobs have only queued, running,
done and failed; a cancelled send ends ``failed`` with "cancelled by <user>", and a
send paused by a stopping service goes back to ``queued`` until it resumes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import ftrack_api
import ftrack_api.exception

from .progress import Snapshot, Subscriber, Throttle

logger = logging.getLogger(__name__)

#: ftrack's web UI truncates long descriptions; keep the whole text readable.
MAX_DESCRIPTION = 1800


def clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The ftrack Job status for a transfer job's end (ftrack has no "cancelled").
FTRACK_STATUS = {"done": "done", "failed": "failed", "cancelled": "failed", "paused": "queued"}


class JobReporter(Subscriber):
    """Keeps one ftrack Job in step with a transfer job."""

    def __init__(
        self, session: ftrack_api.Session, ftrack_job_id: str, title: str, interval: float
    ) -> None:
        self.session = session
        self.ftrack_job_id = ftrack_job_id
        self.title = title
        self.throttle = Throttle(interval)
        #: Whether the final status reached ftrack (set by on_job_finished).
        self.finished = True

    @classmethod
    def create_job(
        cls,
        session: ftrack_api.Session,
        user_id: str | None,
        description: str,
        status: str = "queued",
        job_id: str | None = None,
    ) -> str:
        """Create the ftrack Job for a send (with *job_id* when the journal already holds
        it); return its id."""
        if not user_id:
            user = session.query(
                f'select id from User where username is "{session.api_user}"'
            ).first()
            user_id = user["id"] if user else None
        data = {"status": status, "data": json.dumps({"description": clip(description)})}
        if user_id:
            data["user_id"] = user_id
        if job_id:
            data["id"] = job_id
        job = session.create("Job", data)
        job_id = job["id"]
        try:
            session.commit()
        except ftrack_api.exception.ServerError:
            # A create retried after its reply was lost is refused as a duplicate: the
            # Job exists, and a second one would be left queued for ever.
            session.rollback()
            if session.query(f'select id from Job where id is "{job_id}"').first() is None:
                raise
        return job_id

    @classmethod
    def ensure_job(
        cls,
        session: ftrack_api.Session,
        job_id: str,
        user_id: str | None,
        description: str,
        status: str = "running",
    ) -> None:
        """Create the Job *job_id* unless it exists: the journal names a Job before it is
        created, so a process killed in between leaves no Job that nobody ends."""
        if session.get("Job", job_id) is None:
            cls.create_job(session, user_id, description, status, job_id=job_id)

    def update(self, status: str | None = None, description: str | None = None) -> bool:
        """Set the Job's status and/or description; return whether ftrack took it.

        A failure to report never fails a send."""
        values: dict[str, Any] = {}
        if status:
            values["status"] = status
        if description is not None:
            values["data"] = json.dumps({"description": clip(description)})
        if not values:
            return True
        try:
            job = self.session.get("Job", self.ftrack_job_id)
            if job is None:
                logger.warning(
                    "ftrack Job %s no longer exists; progress is not reported", self.ftrack_job_id
                )
                return True
            for key, value in values.items():
                job[key] = value
            self.session.commit()
        except Exception as error:  # ftrack errors, and ftrack unreachable after retries
            self.session.rollback()
            logger.warning("could not update ftrack Job %s: %s", self.ftrack_job_id, error)
            return False
        return True

    # ------------------------------------------------------------------ subscriber

    def on_job_started(self, snapshot: Snapshot, description: str) -> None:
        self.update("running", f"{self.title}: {description}")

    def on_progress(self, snapshot: Snapshot) -> None:
        if self.throttle.ready():
            self.update(description=f"{self.title}: {snapshot.describe()}")

    def on_job_finished(self, snapshot: Snapshot, status: str, message: str) -> None:
        self.finished = self.finish(status, message)

    def finish(self, status: str, message: str) -> bool:
        """The Job's final status and message; False if ftrack did not take them (the
        journal then remembers to try again, see ``Journal.unreported_jobs``)."""
        return self.update(FTRACK_STATUS[status], f"{self.title}: {message}")
