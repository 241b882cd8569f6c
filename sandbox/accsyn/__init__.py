"""A loopback accsyn service for tests and the demo.

The unmodified ``accsyn_api.Session`` talks to it (point it here with
:meth:`AccsynService.env`), and its transfers really copy files between the folders that
stand for sites and users, with progress, pause/resume/abort and fault injection::

    with AccsynService(tmp / "accsyn", parties={"site=hq": hq, "site=la": la}) as service:
        os.environ.update(service.env())
        session = accsyn_api.Session()
        job = session.create("Transfer", {"tasks": [{"source": "site=hq:demo/a.exr",
                                                      "destination": "site=la"}]})
        service.wait_for_transfer(job["id"])
"""

from .faults import FaultClient, FaultRule, Faults
from .model import ServiceError
from .parties import PartyError
from .service import AccsynService, RequestRecord

__all__ = [
    "AccsynService",
    "FaultClient",
    "FaultRule",
    "Faults",
    "PartyError",
    "RequestRecord",
    "ServiceError",
]
