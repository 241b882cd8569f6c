"""A structure that keeps the path a component has at its source.

This is what accsyn's path mirroring produces: a file sent from ``hq`` to ``la`` lands
at the same project-relative path, so each site's users find it where they expect. The
source's resource identifier reaches the structure as ``context["source_resource_identifier"]``
(ftrack's ``Location.add_component`` passes it, and so does the transfer engine).
"""

from __future__ import annotations

from typing import Any

import ftrack_api.structure.base

from ..accessors.errors import UnsafeResourceIdentifierError
from ..accessors.paths import safe_relative
from .template import StructureError, TemplateStructure


def _is_local_path(path: str) -> bool:
    """An absolute path of this machine: what ftrack's origin location hands over."""
    return path.startswith("/") or (len(path) > 2 and path[1] == ":" and path[2] in "\\/")


class MirrorStructure(ftrack_api.structure.base.Structure):
    """Destination identifier = source identifier (optionally under a prefix).

    A component published straight into the location (from local files, whose path is
    absolute) has nothing to mirror; *fallback* names the structure that places it
    (``template`` by default, ``none`` to refuse).
    """

    def __init__(self, prefix: str = "", fallback: str = "template") -> None:
        super().__init__(prefix=prefix.strip("/"))
        if fallback not in ("template", "none"):
            raise ValueError(
                f'mirror structure: fallback must be "template" or "none", not {fallback!r}'
            )
        self.fallback = TemplateStructure(prefix=prefix) if fallback == "template" else None

    def get_resource_identifier(self, entity: Any, context: dict | None = None) -> str:
        source = (context or {}).get("source_resource_identifier")
        if self.fallback is not None and (not source or _is_local_path(source)):
            return self.fallback.get_resource_identifier(entity, context)
        if not source:
            raise StructureError(
                f'Mirror structure cannot place component "{entity["name"]}" ({entity["id"]}): '
                "it has no path at the source location to mirror; send it from a location "
                "where it is available."
            )
        try:
            relative = safe_relative(source)
        except UnsafeResourceIdentifierError as error:
            raise StructureError(
                f'Mirror structure cannot place component "{entity["name"]}" ({entity["id"]}): '
                f"its source path {source!r} cannot be mirrored ({error.reason})."
            ) from None
        return f"{self.prefix}/{relative}" if self.prefix else relative
