"""Which of Foreman's search attributes the namespace has, asked once per worker process and namespace.

The workflow cannot ask the server, so the planner activity stamps the answer on the `Plan` (an activity result,
recorded in history: replay sees the same answer). A namespace without some of them gets one clear warning per
worker process and goals run without those attributes; nothing fails. A worker started before they were
registered keeps its answer until it restarts.
"""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from core.search_attributes import SEARCH_ATTRIBUTES, TYPE_NAMES

logger = logging.getLogger("foreman.search_attributes")

_INDEXED = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
            "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE, "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT}
_known: dict[tuple[str, str], list[str]] = {}


async def registered(client: Client, namespace: str | None = None) -> list[str]:
    """Names of Foreman's search attributes registered in `namespace` with the right type (cached per server and
    namespace); logs one warning naming what is missing, and how to add it, the first time."""
    namespace = namespace or client.namespace
    key = (client.service_client.config.target_host, namespace)
    if key not in _known:
        present = await _ask(client, namespace)
        if key not in _known:  # two first plans at once: the first answer stands, and warned once
            _known[key] = present
            _warn(namespace, present)
    return _known[key]


async def _ask(client: Client, namespace: str) -> list[str]:
    try:
        response = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    except Exception as err:  # noqa: BLE001 - no answer (permissions, an old server) means: run without them
        logger.info("cannot list the search attributes of namespace %s: %s", namespace, err)
        return []
    custom = dict(response.custom_attributes)
    return [k.name for k in SEARCH_ATTRIBUTES if custom.get(k.name) == _INDEXED[TYPE_NAMES[k.name]]]


def _warn(namespace: str, present: list[str]) -> None:
    missing = [k.name for k in SEARCH_ATTRIBUTES if k.name not in present]
    if missing:
        create = "; ".join(f"temporal operator search-attribute create --namespace {namespace} --name {name} --type {TYPE_NAMES[name]}"
                           for name in missing)
        logger.warning("namespace %s lacks Foreman's search attributes %s (or has them with another type): goals run without them (not filterable by "
                       "them in the CLI or UI). Register them: %s", namespace, ", ".join(missing), create)


def forget() -> None:
    """Drop the cached answers (tests; a worker asks again on its next plan)."""
    _known.clear()
