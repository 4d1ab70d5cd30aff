"""The wheel carries the shipped defaults, and an installed copy reads them from itself.

config/default.yaml and config/models.yaml stay at the repository root; pyproject.toml ships them
as package data of ``core.defaults`` (core/defaults is a link to ../config), and core/config.py
reads them through importlib.resources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("default.yaml", "models.yaml")
# What the wheel build does not need (and what would make copying the checkout slow).
NOT_NEEDED = (".git", ".venv", "node_modules", "data", "tests", "docs", "build", "test-artifacts", "bench-results",
              "*.egg-info", "__pycache__", ".pytest_cache")  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel . --no-deps`` of a copy of the checkout (the build leaves build/ behind)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_NEEDED))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(work / "dist")],
                           cwd=source, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("*.whl")
    return found


def test_the_wheel_holds_the_shipped_yaml(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name in SHIPPED:
            assert archive.read(f"core/defaults/{name}") == (ROOT / "config" / name).read_bytes()


def test_an_installed_wheel_loads_its_own_defaults(wheel: Path, tmp_path: Path) -> None:
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    script = (
        "import core.config, core.codex.catalog as catalog, codex_fake.catalog as fake\n"
        "from core.config import ConfigStore, shipped_yaml\n"
        f"assert core.config.__file__.startswith({str(installed)!r}), core.config.__file__\n"
        f"assert shipped_yaml('default.yaml')[1].startswith({str(installed)!r})\n"
        f"cfg = ConfigStore(__import__('pathlib').Path({str(tmp_path / 'data')!r}), environ={{}}).current\n"
        "assert cfg.server.port == 8080\n"
        "assert catalog.ModelCatalog.from_config(cfg).get('gpt-5.4') is not None\n"
        "assert fake.catalog().get('gpt-5.4') is not None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_wheel_declares_the_codex_proxy_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "codex-proxy = codex_proxy.cli:main" in archive.read(entry_points).decode()
    assert {"codex_proxy/addon.py", "codex_proxy/cli.py"} <= names


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new virtualenv with the wheel installed as ``pip install`` would (its console script
    included). Offline: the dependencies come from the running interpreter's environment through
    a path file, which adds their folder and nothing of this checkout (its editable-install hook
    is a .pth that a plain path line does not run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    ours = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                                "--quiet", str(wheel)], capture_output=True, text=True, timeout=300, check=False, env=clean)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Only now: pip must not find this checkout's own (editable) install among the dependencies.
    Path(site, "dependencies.pth").write_text(ours + "\n")
    return where


def test_a_fresh_virtualenv_serves_a_request_with_the_codex_proxy_command(wheel: Path, tmp_path: Path) -> None:
    import httpx
    import orjson
    import yaml

    venv = fresh_venv(tmp_path / "venv", wheel)
    home = tmp_path / "home"  # no CODEX_PROXY_DATA_DIR: the installed copy picks the user's data folder
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CODEX_PROXY_DATA_DIR", "XDG_DATA_HOME", "PORT")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import core, codex_proxy; print(core.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the wheel's code, not this checkout's
    data = home / ".local" / "share" / "codex-proxy" / "demo"
    log = (tmp_path / "codex-proxy.log").open("wb")
    process = subprocess.Popen([str(venv / "bin" / "codex-proxy"), "--listen-host", "127.0.0.1", "-p", "0",
                                "--set", f"confdir={tmp_path / 'mitm'}", "--set", "codex_demo=true"],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (data / "runtime.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "codex-proxy.log").read_text()
            time.sleep(0.1)
        port = orjson.loads((data / "runtime.json").read_bytes())["listen"][0][1]
        key = yaml.safe_load((data / "local.yaml").read_text())["server"]["proxy_api_key"]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                            json={"model": "gpt-5.4", "messages": [{"role": "user", "content": "installed?"}]}, timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "You said: installed?"
    finally:
        process.terminate()
        process.wait(15)
        log.close()
