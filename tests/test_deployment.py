"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPOSITORY, require_tool


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = require_tool("docker-compose")
    empty_env_file = REPOSITORY / "tests" / "data" / "empty.env"
    return subprocess.run(
        # An empty --env-file: a developer's .env must not change what the test sees.
        [
            binary,
            "--env-file",
            str(empty_env_file),
            "-f",
            str(REPOSITORY / "docker-compose.yml"),
            *args,
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )


def test_compose_file_is_valid_and_complete() -> None:
    env = {"NEO4J_PASSWORD": "compose-check"}
    result = compose("config", "-q", env=env)
    assert result.returncode == 0, result.stderr
    assert compose("config", "--services", env=env).stdout.split() == ["neo4j", "api"]
    assert set(compose("config", "--volumes", env=env).stdout.split()) >= {"neo4j-data"}
    rendered = compose("config", env=env).stdout
    assert "image: neo4j:5.26" in rendered
    assert 'NEO4J_PLUGINS: \'["apoc", "graph-data-science"]\'' in rendered
    assert "condition: service_healthy" in rendered
    assert "NEO4J_URI: bolt://neo4j:7687" in rendered


def test_compose_refuses_to_run_without_a_password() -> None:
    result = compose("config", "-q")
    assert result.returncode != 0
    assert "set NEO4J_PASSWORD" in result.stderr


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    for package in ("graph", "gnn", "forecasting", "recommender", "api", "cypher"):
        assert f"COPY {package} ./{package}" in dockerfile
        assert Path(REPOSITORY / package).is_dir()
    assert 'CMD ["kgrec", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
