"""Reading a goal's history: a local activity (a playbook's plan) leaves a marker event, not activity events."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent

LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the marker name the SDK's core records a local activity under


def local_activity(event: HistoryEvent) -> tuple[str, list[Payload]] | None:
    """(activity type, result payloads) of a local activity's marker; None for any other event. The result is empty
    when the activity failed."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    data = json.loads(marker.details["data"].payloads[0].data)
    result = marker.details["result"].payloads if "result" in marker.details else []
    return data.get("activity_type", ""), list(result)
