"""A structure driven by path templates, so a studio's folder layout is a config value.

Three templates cover ftrack's component kinds (defaults shown)::

    file      = "{project}/{context}/{asset}/v{version:03d}/{component}{ext}"
    sequence  = "{project}/{context}/{asset}/v{version:03d}/{component}/{component}.{frame}{ext}"
    container = "{project}/{context}/{asset}/v{version:03d}/{component}"

Fields: ``project`` (project name), ``context`` (the names between the project and the
asset's parent, ``/``-joined, e.g. ``sq010/sh0010``), ``parent`` (the asset's parent
name), ``task`` (the version's task), ``asset``, ``asset_type``, ``version`` (an int,
format specs allowed), ``component``, ``ext`` (the file type with its dot) and, in the
sequence template, ``frame``: a member's padded frame number, or ``%04d`` for the
sequence itself, as ftrack's own structures do. Members of a plain container land in
the container's folder under their own name.

Every value is sanitised for file systems (accents folded to ASCII, anything but
letters, digits, ``.``, ``-`` and ``_`` replaced), so a name can never add a folder
level or escape the location root.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from typing import Any

import ftrack_api.exception
import ftrack_api.inspection
import ftrack_api.structure.base
import ftrack_api.symbol

DEFAULT_FILE = "{project}/{context}/{asset}/v{version:03d}/{component}{ext}"
DEFAULT_SEQUENCE = "{project}/{context}/{asset}/v{version:03d}/{component}/{component}.{frame}{ext}"
DEFAULT_CONTAINER = "{project}/{context}/{asset}/v{version:03d}/{component}"

FIELDS = (
    "project",
    "context",
    "parent",
    "task",
    "asset",
    "asset_type",
    "version",
    "component",
    "ext",
    "frame",
)

_UNSAFE = re.compile(r"[^\w.-]", re.ASCII)


class StructureError(ftrack_api.exception.StructureError):
    """ftrack's StructureError, shown exactly as written.

    ftrack's ``Error.__str__`` runs ``str.format`` over the message, so a message naming
    the ``{task}`` field, or a component called ``comp{1}``, would raise instead of
    being shown.
    """

    def __str__(self) -> str:
        return self.message


def sanitise(value: str, substitute: str = "_") -> str:
    """A single safe path element: ASCII letters, digits, ``.``, ``-``, ``_``."""
    folded = unicodedata.normalize("NFKD", value)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    cleaned = _UNSAFE.sub(substitute, folded).strip()
    # "." and ".." would be folder references, not names.
    if cleaned.strip(".") == "":
        cleaned = cleaned.replace(".", substitute) or substitute
    return cleaned


def _check_template(kind: str, template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{kind} template {template!r} is not valid: {error}") from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise ValueError(
                f"{kind} template {template!r} uses unknown field {{{field}}}; "
                f"known fields: {', '.join(FIELDS)}"
            )
        if field == "frame" and kind != "sequence":
            raise ValueError(
                f"{kind} template {template!r} cannot use {{frame}}; only the sequence template can"
            )
        if spec and field != "version":
            raise ValueError(
                f"{kind} template {template!r}: only {{version}} takes a format, e.g. {{version:03d}}"
            )
    if kind == "sequence" and "{frame}" not in template:
        raise ValueError(f"sequence template {template!r} must contain {{frame}}")
    if template.startswith("/") or "\\" in template or ".." in template.split("/"):
        raise ValueError(
            f"{kind} template {template!r} must be a relative '/'-separated path without '..'"
        )


class TemplateStructure(ftrack_api.structure.base.Structure):
    """Resource identifiers from configurable path templates (see module docstring)."""

    def __init__(
        self,
        file: str = DEFAULT_FILE,
        sequence: str = DEFAULT_SEQUENCE,
        container: str = DEFAULT_CONTAINER,
        prefix: str = "",
        lowercase: bool = False,
        illegal_character_substitute: str = "_",
    ) -> None:
        super().__init__(prefix=prefix.strip("/"))
        for kind, template in (("file", file), ("sequence", sequence), ("container", container)):
            _check_template(kind, template)
        if _UNSAFE.search(illegal_character_substitute) or not illegal_character_substitute:
            raise ValueError("illegal_character_substitute must be one safe character such as '_'")
        self.templates = {"file": file, "sequence": sequence, "container": container}
        self.lowercase = lowercase
        self.substitute = illegal_character_substitute

    # ------------------------------------------------------------------ public

    def get_resource_identifier(self, entity: Any, context: dict | None = None) -> str:
        entity_type = entity.entity_type
        if entity_type == "SequenceComponent":
            return self._render("sequence", entity, frame=self._get_sequence_expression(entity))
        if entity_type == "ContainerComponent":
            return self._render("container", entity)
        if entity_type != "FileComponent":
            raise StructureError(
                f"Template structure cannot place a {entity_type}; it places components only."
            )
        container = entity["container"]
        if container is not None and container is not ftrack_api.symbol.NOT_SET:
            if container.entity_type == "SequenceComponent":
                return self._render("sequence", container, frame=self._frame(entity, container))
            parent = self.get_resource_identifier(container, context)
            return f"{parent}/{self._clean(entity['name'])}{self._ext(entity)}"
        return self._render("file", entity)

    # ------------------------------------------------------------------ helpers

    def _clean(self, value: str) -> str:
        cleaned = sanitise(str(value), self.substitute)
        return cleaned.lower() if self.lowercase else cleaned

    def _ext(self, component: Any) -> str:
        file_type = component["file_type"] or ""
        if file_type and not file_type.startswith("."):
            file_type = "." + file_type
        return "." + self._clean(file_type[1:]) if file_type else ""

    def _frame(self, member: Any, sequence: Any) -> str:
        name = str(member["name"])
        padding = sequence["padding"] or 0
        return name.zfill(padding) if name.isdigit() else self._clean(name)

    def _render(self, kind: str, component: Any, frame: str | None = None) -> str:
        fields = _Fields(self, component, frame)
        path = self.templates[kind].format_map(fields)
        parts = [p for p in path.split("/") if p]
        if self.prefix:
            parts.insert(0, self.prefix)
        return "/".join(parts)


class _Fields(dict):
    """Template values computed on first use, so a template that does not use
    ``{asset_type}`` or ``{task}`` costs no query for them."""

    def __init__(self, structure: TemplateStructure, component: Any, frame: str | None) -> None:
        super().__init__()
        self.structure = structure
        self.component = component
        self.frame = frame
        self._version: Any = None

    def __missing__(self, key: str) -> Any:
        getter: Callable[[], Any] = getattr(self, f"_get_{key}")
        value = getter()
        self[key] = value
        return value

    def _fail(self, missing: str) -> StructureError:
        component = self.component
        return StructureError(
            f'Template structure cannot place component "{component["name"]}" ({component["id"]}): '
            f"{missing}."
        )

    def version(self) -> Any:
        if self._version is None:
            version = self.component["version"]
            if version is None or version is ftrack_api.symbol.NOT_SET:
                raise self._fail("it has no version")
            # Asking the entity, not scanning session.created (every cached entity):
            # planning thousands of components must stay linear.
            if ftrack_api.inspection.state(version) is ftrack_api.symbol.CREATED:
                raise self._fail("its version is not committed yet; commit the session first")
            self._version = version
        return self._version

    def link(self) -> list:
        link = self.version()["link"]
        if not link:
            raise self._fail("its version has no link (project and contexts) on the server")
        return link

    def _get_project(self) -> str:
        version = self.version()
        project = version.session.get("Project", self.link()[0]["id"])
        if project is None:
            raise self._fail("its project could not be found")
        return self.structure._clean(project["name"])

    def _get_context(self) -> str:
        names = [self.structure._clean(item["name"]) for item in self.link()[1:-1]]
        return "/".join(names)

    def _get_parent(self) -> str:
        inner = self.link()[1:-1]
        if not inner:
            raise self._fail(
                "the asset sits directly under the project, but the template uses {parent}"
            )
        return self.structure._clean(inner[-1]["name"])

    def _get_task(self) -> str:
        task = self.version()["task"]
        if task is None or task is ftrack_api.symbol.NOT_SET:
            raise self._fail("its version has no task, but the template uses {task}")
        return self.structure._clean(task["name"])

    def _get_asset(self) -> str:
        return self.structure._clean(self.version()["asset"]["name"])

    def _get_asset_type(self) -> str:
        asset_type = self.version()["asset"]["type"]
        if asset_type is None or asset_type is ftrack_api.symbol.NOT_SET:
            raise self._fail("its asset has no type, but the template uses {asset_type}")
        return self.structure._clean(asset_type["name"])

    def _get_version(self) -> int:
        number = self.version()["version"]
        if not isinstance(number, int):
            raise self._fail("its version has no number")
        return number

    def _get_component(self) -> str:
        return self.structure._clean(self.component["name"])

    def _get_ext(self) -> str:
        return self.structure._ext(self.component)

    def _get_frame(self) -> str:
        if self.frame is None:
            raise self._fail("{frame} is only known for sequence members")
        return self.frame
