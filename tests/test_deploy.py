"""docker-compose.yml, checked without a Docker engine: it parses, every dependency and mounted file
exists, Temporal's images are pinned together, and the workers' store settings are ones `from_settings()`
accepts and turn into the shared backends (PostgreSQL memory and cache, S3 contents)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

import settings
from contracts.llm import Provider
from stores import from_settings
from stores.cache_postgres import PostgresCallCache
from stores.content_s3 import S3ContentStore
from stores.memory_postgres import PostgresMemoryStore

COMPOSE = settings.PROJECT_ROOT / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def with_defaults(value: object) -> str:
    """What compose substitutes for `${NAME:-default}` when NAME is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def test_every_dependency_and_mounted_file_exists() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= services.keys(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (settings.PROJECT_ROOT / source).is_file(), f"{name} mounts a missing {source}"
    scripts = sorted((settings.PROJECT_ROOT / "deploy").glob("*.sh"))
    assert scripts and all(subprocess.run(["sh", "-n", str(s)]).returncode == 0 for s in scripts)


def test_temporal_images_are_pinned_together_and_not_auto_setup() -> None:
    images = {name: with_defaults(service["image"]) for name, service in compose()["services"].items() if "image" in service}
    assert not any("auto-setup" in image for image in images.values())
    assert images["temporal"] == "temporalio/server:1.32.0"
    assert images["temporal-schema"] == images["temporal-namespace"] == "temporalio/admin-tools:1.32.0"  # schema = server version
    assert images["temporal-ui"].startswith("temporalio/ui:2.54.")
    assert all(":" in image and not image.endswith(":latest") for image in images.values())


def test_the_workers_settings_build_the_shared_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    worker_env = {name: with_defaults(value) for name, value in compose()["services"]["worker"]["environment"].items()}
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    built = from_settings()  # raises StoreError(STORE_CONFIG) on a misconfiguration
    assert isinstance(built.memory, PostgresMemoryStore) and isinstance(built.cache, PostgresCallCache)
    assert isinstance(built.content, S3ContentStore)
    assert (built.content.endpoint_url, built.content.bucket) == ("http://minio:9000", "foreman")
    bucket_job = compose()["services"]["minio-bucket"]["entrypoint"]
    assert bucket_job[-1].split("/", 1)[1] == built.content.bucket  # the one-shot creates the bucket the workers use


def test_model_workers_poll_the_queue_the_workers_send_model_calls_to(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    worker, models = services["worker"], services["model-worker"]
    assert models["environment"] == worker["environment"] and models["command"][:3] == ["python", "worker.py", "--models"]
    for name, value in worker["environment"].items():
        monkeypatch.setenv(name, with_defaults(value))
    assert settings.model_task_queue() == "foreman-models"  # planners stamp it; `--models` polls it
    assert settings.model_queue_activities_per_second() is None  # empty: no limit until the operator sets one
    assert settings.provider_limits(Provider.OPENAI) == settings.ProviderLimits()


def test_the_workers_serve_metrics_on_the_port_they_expose(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = compose()["services"]["worker"]
    for name, value in worker["environment"].items():
        monkeypatch.setenv(name, with_defaults(value))
    port = settings.metrics_address().rsplit(":", 1)[1]
    assert port in worker["expose"] and all(mapping.endswith(f":{port}") for mapping in worker["ports"])
    assert settings.metrics_url() == f"http://localhost:{port}/metrics"
    assert settings.otel_exporter() == "none" and settings.otlp_protocol() == "http/protobuf"


def test_a_worker_settles_its_heap_before_it_polls() -> None:
    """Start-up garbage is collected, not frozen with the rest; what start-up built is frozen out of full collections."""
    code = (
        "import gc, weakref\n"
        "from worker import settle_heap\n"
        "class Node:\n    pass\n"
        "node = Node(); node.me = node; alive = weakref.ref(node); del node\n"
        "gc.disable()  # only settle_heap may collect here\n"
        "settle_heap()\n"
        "print(alive() is None, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=settings.PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1]) > 10_000
