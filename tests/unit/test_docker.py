"""The Dockerfile and compose.yaml agree with each other and with the code (no Docker here to
build them): the environment variables they set are ones the proxy reads, the data folder is the
volume, the published port is the one the proxy listens on, and the documented store URL names the
compose file's PostgreSQL service."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import orjson
import yaml

from core.config import ENV_OVERRIDES
from core.store.opening import SCHEMES

ROOT = Path(__file__).resolve().parents[2]
READ_BY_THE_PROXY = {*ENV_OVERRIDES, "CODEX_PROXY_DATA_DIR"}


def dockerfile() -> dict[str, list[str]]:
    """Instruction → its arguments (JSON or shell form), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(rest.strip())
    return found


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_image_runs_the_installed_command_on_its_data_volume() -> None:
    docker = dockerfile()
    assert docker["FROM"] == ["python:3.12-slim"]
    assert any("pip install" in run and "/src" in run for run in docker["RUN"])
    entrypoint = orjson.loads(docker["ENTRYPOINT"][0])
    assert entrypoint[0] == "codex-proxy"  # pyproject's console script
    assert 'codex-proxy = "codex_proxy.cli:main"' in (ROOT / "pyproject.toml").read_text()
    port = entrypoint[entrypoint.index("-p") + 1]
    assert docker["EXPOSE"] == [port] and entrypoint[entrypoint.index("--listen-host") + 1] == "0.0.0.0"
    env = dict(item.split("=", 1) for line in docker["ENV"] for item in shlex.split(line))
    assert set(env) <= READ_BY_THE_PROXY
    assert docker["VOLUME"] == [env["CODEX_PROXY_DATA_DIR"]]
    confdir = entrypoint[entrypoint.index("--set") + 1]
    assert confdir == f"confdir={env['CODEX_PROXY_DATA_DIR']}/mitmproxy"  # mitmproxy's CA survives a new container
    assert "USER" in docker  # not root


def test_compose_publishes_the_proxy_and_keeps_its_data() -> None:
    spec, docker = compose(), dockerfile()
    proxy = spec["services"]["proxy"]
    assert proxy["build"] == "." and "profiles" not in proxy  # `docker compose up` starts it
    (mapping,) = proxy["ports"]
    assert mapping.split(":")[-1] == docker["EXPOSE"][0]
    data_dir = dict(item.split("=", 1) for line in docker["ENV"] for item in shlex.split(line))["CODEX_PROXY_DATA_DIR"]
    (volume,) = proxy["volumes"]
    name, target = volume.split(":")
    assert target == data_dir and name in spec["volumes"]
    assert set(proxy["environment"]) <= READ_BY_THE_PROXY
    assert ENV_OVERRIDES["CODEX_PROXY_STORE_URL"] == "store.url"


def test_the_postgres_profile_is_optional_and_the_documented_url_reaches_it() -> None:
    spec = compose()
    postgres = spec["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert spec["services"]["proxy"]["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert postgres["volumes"][0].split(":")[0] in spec["volumes"]
    env = postgres["environment"]
    password = re.fullmatch(r"\$\{POSTGRES_PASSWORD:-(.+)\}", env["POSTGRES_PASSWORD"])
    assert password is not None
    expected = f"postgresql://{env['POSTGRES_USER']}:{password[1]}@postgres:5432/{env['POSTGRES_DB']}"
    readme = (ROOT / "README.md").read_text()
    docker_section = readme[readme.index("### Docker") :].split("\n#", 1)[0]
    for text in ((ROOT / "compose.yaml").read_text(), docker_section):
        urls = re.findall(r"CODEX_PROXY_STORE_URL=(\S+)", text)
        assert urls and all(url == expected for url in urls), urls
    assert expected.startswith(SCHEMES)
    assert re.search(r"pg_isready -U " + env["POSTGRES_USER"] + " -d " + env["POSTGRES_DB"], str(postgres["healthcheck"]["test"]))
