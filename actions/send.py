"""**accsyn Send**: the coordinator's way to send work to another site, user or vendor.

Offered for selections of versions, tasks, shots and other contexts, lists and projects,
to users the sites config allows to send. The form offers the locations where the
selection has components (with counts) as sources, every other configured location as a
destination (several at once are allowed), which components to include, additional
files, a priority and a preview. A submitted form is validated (errors come back on the
form with the values kept), then queued as one transfer job with an ftrack Job the
coordinator can watch; the transfer workers of ``ftrack-transfer serve`` do the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ftrack_api

from ..transfer.config import SitesConfig
from ..transfer.errors import SelectionError, UserError
from ..transfer.permissions import check_send, may_send, user_groups
from ..transfer.planner import Filters, Planner
from ..transfer.selection import EntityRef
from ..transfer.units import counted, format_size
from . import forms
from .base import Action

PRIORITIES = {"low": 250, "normal": 500, "high": 750}
_FIXED_FIELDS = {"source", "components", "additional_files", "priority", "preview"}
_DESTINATION_PREFIX = "to:"


@dataclasses.dataclass(frozen=True)
class SendRequest:
    """A validated submission, handed to the service's submitter."""

    source: str
    destinations: list[str]
    selection: list[EntityRef]
    component_names: list[str]
    additional_files: list[str]
    priority: int
    username: str
    user_id: str
    title: str = "accsyn Send"
    components_selected: int = 0


class SendAction(Action):
    identifier = "ftrack-transfer.send"
    label = "accsyn Send"
    description = "Send the selected work to another site, a remote user or a vendor"
    icon = "https://www.accsyn.com/favicon.ico"

    def __init__(
        self,
        session: ftrack_api.Session,
        config: SitesConfig,
        submitter: Callable[[SendRequest], str],
        locations: Mapping[str, Any],
    ) -> None:
        super().__init__(session)
        self.config = config
        self.submitter = submitter
        #: Configured, usable Location entities of this service, by name.
        self.locations = dict(locations)

    # ------------------------------------------------------------------ discover

    def applies(self, selection: list[EntityRef], user: Mapping[str, Any]) -> bool:
        if not user.get("id"):
            return False
        groups = user_groups(self.session, user["id"])
        return may_send(self.config, user.get("username", ""), groups)

    # ------------------------------------------------------------------ launch

    def launch(self, selection, user, values, event):
        if not self.applies(selection, user):
            return forms.message(
                False, f"{user.get('username', 'This user')} may not use {self.label}"
            )
        counts, names, total = self._inventory(selection)
        if values is None:
            if not counts:
                return forms.message(
                    False,
                    f"None of the {total} components under the selection is available in a "
                    f"configured location ({', '.join(self.locations)}); nothing to send",
                )
            return self._form(counts, names)
        try:
            request = self._validate(selection, user, values, counts)
            if values.get("preview"):
                return self._form(counts, names, values, preview=self._preview(request))
            job_id = self.submitter(request)
        except UserError as error:
            return self._form(counts, names, values, error=str(error))
        return forms.message(
            True,
            f"Queued {self.label} of {counted(request.components_selected, 'component')} from {request.source} to "
            f"{', '.join(request.destinations)} (job {job_id}); follow it in the Jobs list",
        )

    # ------------------------------------------------------------------ helpers

    def _inventory(self, selection: list[EntityRef]) -> tuple[dict[str, int], list[str], int]:
        """Components under the selection per configured location, and their names."""
        components = Planner(self.session).collect(selection, Filters(), None)
        by_id = {loc["id"]: name for name, loc in self.locations.items()}
        counts: dict[str, int] = {}
        names: set[str] = set()
        for component in components:
            names.add(component["name"])
            seen = {row["location_id"] for row in component["component_locations"]}
            for location_id in seen:
                if location_id in by_id:
                    counts[by_id[location_id]] = counts.get(by_id[location_id], 0) + 1
        return counts, sorted(names), len(components)

    def _form(
        self,
        counts: dict[str, int],
        names: list[str],
        values: Mapping[str, Any] | None = None,
        error: str | None = None,
        preview: str | None = None,
    ) -> dict[str, Any]:
        values = values or {}
        items: list[dict[str, Any]] = []
        if error:
            items.append(forms.label(f"**Cannot send:** {error}"))
        if preview:
            items.append(forms.label(preview))
        sources = [
            (name, f"{name} ({counted(counts[name], 'component')})")
            for name in self.locations
            if name in counts
        ]
        source = values.get("source") or sources[0][0]
        items.append(forms.enumerator("source", "Source location", sources, source))
        items.append(forms.label("**Destinations** (one or more)"))
        for name, location in self.config.locations.items():
            if name not in self.locations:
                continue
            title = f"Send to {name}" + (
                f" - {location.label}" if location.label and location.label != name else ""
            )
            items.append(
                forms.boolean(
                    f"{_DESTINATION_PREFIX}{name}",
                    title,
                    bool(values.get(f"{_DESTINATION_PREFIX}{name}")),
                )
            )
        component_options = [("all", "All components")] + [(n, f"Only '{n}'") for n in names]
        items.append(
            forms.enumerator(
                "components", "Components", component_options, values.get("components", "all")
            )
        )
        items.append(
            forms.textarea(
                "additional_files",
                "Additional files (one path per line, relative to the source location's root)",
                values.get("additional_files", ""),
            )
        )
        priorities = [(key, key.capitalize()) for key in PRIORITIES]
        items.append(
            forms.enumerator("priority", "Priority", priorities, values.get("priority", "normal"))
        )
        items.append(forms.boolean("preview", "Preview the plan instead of sending", False))
        return forms.form(self.label, items, "Send")

    def _validate(
        self,
        selection: list[EntityRef],
        user: Mapping[str, Any],
        values: Mapping[str, Any],
        counts: dict[str, int],
    ) -> SendRequest:
        unknown = [
            key for key in values
            if key not in _FIXED_FIELDS
            and not (key.startswith(_DESTINATION_PREFIX) and key[len(_DESTINATION_PREFIX):] in self.locations)
        ]  # fmt: skip
        if unknown:
            raise SelectionError(
                f"the form sent an unexpected field {unknown[0]!r}; reopen the action and try again"
            )
        source = values.get("source")
        if not source:
            raise SelectionError("choose a source location")
        if source not in self.locations:
            raise SelectionError(
                f"unknown source location {source!r}; choose one of {', '.join(self.locations)}"
            )
        if source not in counts:
            raise SelectionError(
                f"none of the selected components is available at {source}; choose another source"
            )
        destinations = [
            key[len(_DESTINATION_PREFIX):] for key, value in values.items()
            if key.startswith(_DESTINATION_PREFIX) and _truthy(value)
        ]  # fmt: skip
        if not destinations:
            raise SelectionError("choose at least one destination location")
        if source in destinations:
            raise SelectionError(
                f"source and destination are the same location ({source}); untick {source}"
            )
        groups = user_groups(self.session, user["id"])
        check_send(self.config, user.get("username", ""), groups, source, destinations)
        component = values.get("components") or "all"
        additional = [
            line.strip()
            for line in str(values.get("additional_files") or "").splitlines()
            if line.strip()
        ]
        self._check_additional(source, additional)
        priority = PRIORITIES.get(str(values.get("priority") or "normal"))
        if priority is None:
            raise SelectionError(
                f"unknown priority {values.get('priority')!r}; choose low, normal or high"
            )
        return SendRequest(
            source=source,
            destinations=destinations,
            selection=selection,
            component_names=[] if component == "all" else [component],
            additional_files=additional,
            priority=priority,
            username=user.get("username", ""),
            user_id=user["id"],
            components_selected=counts[source],
        )

    def _check_additional(self, source: str, paths: list[str]) -> None:
        from ..accessors.errors import UnsafeResourceIdentifierError
        from ..accessors.paths import safe_relative

        accessor = self.locations[source].accessor
        for path in paths:
            try:
                relative = safe_relative(path)
            except UnsafeResourceIdentifierError as error:
                raise SelectionError(
                    f"additional file {path!r} is not inside {source}: it {error.reason}"
                ) from None
            if not relative or not accessor.exists(relative):
                raise SelectionError(f"additional file {path!r} does not exist at {source}")

    def _preview(self, request: SendRequest) -> str:
        plan = Planner(self.session).plan(
            request.selection,
            self.locations[request.source],
            [self.locations[d] for d in request.destinations],
            component_names=request.component_names,
            additional_files=request.additional_files,
        )
        lines = [f"**Preview:** {plan.summary()}"]
        for leg in plan.legs:
            top_level = {c.component_id: c.container_id or c.component_id for c in leg.components}
            sizes: dict[str, int] = {}
            for file in leg.files:
                owner = top_level.get(file.component_id or "")
                if owner:
                    sizes[owner] = sizes.get(owner, 0) + file.size
            for component in leg.components:
                if component.container_id is None:
                    size = format_size(sizes.get(component.component_id, 0))
                    lines.append(f"- {component.label} -> {leg.destination} ({size})")
            for skipped in leg.skipped:
                lines.append(f"- {skipped.label}: skipped, {skipped.reason}")
        for missing in plan.missing:
            lines.append(f"- {missing.label}: {missing.reason}")
        lines.append("Untick *Preview* and submit to send.")
        return "\n".join(lines[:60])


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")
