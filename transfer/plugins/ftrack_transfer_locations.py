"""ftrack event plugin: configure every location of the sites config in each session.

Put this file's folder on ``FTRACK_EVENT_PLUGIN_PATH`` (``ftrack-transfer plugin-path``
prints it). The sites config is read from ``$FTRACK_TRANSFER_CONFIG`` or the per-user
default; see docs/configuration.md.
"""

from ftrack_transfer.transfer.configure_location import register  # noqa: F401
