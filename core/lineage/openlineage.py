"""OpenLineage RunEvents (START, COMPLETE, FAIL) for runs, their datasets and their adapter.

Events follow the OpenLineage 2-0-2 ``RunEvent`` schema: the run id is a UUID (uuid5 of
polyadapt's run id, so every event of a run shares it; the original id travels in the
``polyadapt_run`` run facet), the job is ``namespace/name``, inputs are the dataset manifests
(their root hash as the dataset version) and the output is the adapter (its weights hash as
the version). A target is a file (one JSON event per line, appended) or an http(s) URL
(POSTed as JSON, e.g. Marquez's ``/api/v1/lineage``). Delivery never fails a run: a failure
becomes a warning.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any

from polyadapt import __version__
from polyadapt.errors import ConfigError
from polyadapt.lineage.state import utc_stamp

PRODUCER = f"https://pypi.org/project/polyadapt/{__version__}/"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
VERSION_FACET = f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
ERROR_FACET = f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
JOB_TYPE_FACET = f"{_FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
#: Custom facets (prefixed, as the spec asks) point at the producer's own definitions.
CUSTOM_FACET = PRODUCER + "#/$defs/{}"
EVENT_TYPES = ("START", "COMPLETE", "FAIL")
NAMESPACE = "polyadapt"
_RUN_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/polyadapt/")


class OpenLineageWarning(UserWarning):
    """An OpenLineage event could not be delivered (the run goes on)."""


def run_uuid(run_id: str) -> str:
    """The OpenLineage run id (a UUID) of polyadapt run ``run_id``: the same for every event."""
    return str(uuid.uuid5(_RUN_UUID_NAMESPACE, run_id))


def _facet(schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **fields}


def _now() -> str:
    return utc_stamp()


def _input(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    source = manifest.get("source") or {}
    name = source.get("name") or manifest["root_hash"]
    details = {
        key: manifest.get(key)
        for key in ("role", "kind", "records", "root_hash", "quarantine", "governance")
        if manifest.get(key) is not None
    }
    return {
        "namespace": namespace,
        "name": name,
        "facets": {
            "version": _facet(VERSION_FACET, datasetVersion=manifest["root_hash"]),
            "polyadapt_manifest": _facet(CUSTOM_FACET.format("PolyadaptManifestDatasetFacet"), **details),
        },
    }


def _output(adapter: dict[str, Any], namespace: str) -> dict[str, Any]:
    details = {key: value for key, value in adapter.items() if value is not None}
    name = adapter["name"]
    if adapter.get("base_model") and adapter.get("version") is not None:
        name = f"{adapter['base_model']}:{name}@{adapter['version']}"
    return {
        "namespace": namespace,
        "name": name,
        "facets": {
            "version": _facet(VERSION_FACET, datasetVersion=adapter["weights_hash"]),
            "polyadapt_adapter": _facet(
                CUSTOM_FACET.format("PolyadaptAdapterDatasetFacet"), **{k: str(v) for k, v in details.items()}
            ),
        },
    }


def run_event(
    event_type: str,
    *,
    run_id: str,
    job_name: str,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    error: str | None = None,
    namespace: str = NAMESPACE,
    event_time: str | None = None,
) -> dict[str, Any]:
    """One OpenLineage 2-0-2 RunEvent as a dict (see the module docstring); sends nothing.

    ``inputs`` are dataset manifests (:func:`polyadapt.lineage.manifest.build_manifest`);
    ``outputs`` are ``{"name", "weights_hash", ...}`` for the adapter (with ``base_model`` and
    ``version`` the dataset is named ``base:name@version``; other keys such as ``path`` go to
    the ``polyadapt_adapter`` facet); ``error`` (the message, never record content) adds the
    ``errorMessage`` facet and belongs to FAIL.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}")
    run_facets: dict[str, Any] = {
        "polyadapt_run": _facet(CUSTOM_FACET.format("PolyadaptRunFacet"), runId=run_id),
    }
    if error is not None:
        run_facets["errorMessage"] = _facet(ERROR_FACET, message=error, programmingLanguage="python")
    return {
        "eventType": event_type,
        "eventTime": event_time or _now(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_uuid(run_id), "facets": run_facets},
        "job": {
            "namespace": namespace,
            "name": job_name,
            "facets": {
                "jobType": _facet(JOB_TYPE_FACET, processingType="BATCH", integration="POLYADAPT", jobType="TRAINING"),
            },
        },
        "inputs": [_input(manifest, namespace) for manifest in inputs or []],
        "outputs": [_output(adapter, namespace) for adapter in outputs or []],
    }


class OpenLineageEmitter:
    """Sends RunEvents to ``target``: a file path (JSON lines, appended) or an http(s) URL.

    ``headers`` are added to HTTP requests (e.g. ``{"Authorization": "Bearer ..."}``).
    """

    def __init__(
        self,
        target: str | Path,
        *,
        namespace: str = NAMESPACE,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
    ):
        text = str(target)
        self.namespace = namespace
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._lock = threading.Lock()
        if text.startswith(("http://", "https://")):
            self.url: str | None = text
            self.path: Path | None = None
        elif "://" in text and not text.startswith("file://"):
            raise ConfigError(f"OpenLineage target {text!r}: use a file path or an http(s):// URL")
        else:
            self.url = None
            self.path = Path(text.removeprefix("file://")).expanduser()

    def emit(self, event: dict[str, Any]) -> bool:
        """Deliver one event; False (with an :class:`OpenLineageWarning`) when it could not be."""
        body = json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)
        try:
            if self.path is not None:
                self._append(body)
            else:
                self._post(body)
        except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
            where = self.path or self.url
            warnings.warn(f"OpenLineage event not delivered to {where}: {exc}", OpenLineageWarning, stacklevel=2)
            return False
        return True

    def _append(self, body: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (body + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)  # one write per line: whole lines under concurrent writers
            finally:
                os.close(fd)

    def _post(self, body: str) -> None:
        assert self.url is not None
        request = urllib.request.Request(
            self.url,
            data=body.encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()
