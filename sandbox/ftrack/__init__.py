"""A loopback ftrack server for tests and offline demos.

The unmodified ``ftrack_api.Session`` runs against it: the ``/api`` batch protocol
with the project's own schema declaration and query language, server rules the client
relies on, ``ftrack.update`` events, and the Socket.IO event hub that actions and the
web UI talk through. See :class:`FtrackServer`.
"""

from .api import Stats
from .eventhub import SubscriberInfo
from .faults import Faults
from .schema import write_client_cache
from .seed import SeedInfo
from .server import FtrackServer

__all__ = ["Faults", "FtrackServer", "SeedInfo", "Stats", "SubscriberInfo", "write_client_cache"]
