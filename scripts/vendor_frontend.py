"""Fetch the dashboard's pinned front-end libraries from the npm registry into
dashboard/static/vendor/<package>/ (``make vendor``).

dashboard/static/vendor/vendor.json pins each package: its version, the registry's integrity hash
of the tarball (checked before anything is unpacked) and the files taken from it, with their
sha256 (rewritten here; tests/unit/test_dashboard_assets.py checks the committed copies against
them). To move to a new version: change ``version`` and ``integrity`` (``npm view
<package>@<version> dist.integrity``) and run ``make vendor``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "dashboard" / "static" / "vendor"
MANIFEST = VENDOR / "vendor.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(name: str, pin: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(["npm", "pack", f"{name}@{pin['version']}", "--pack-destination", tmp, "--silent"],
                                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        tarball = Path(tmp) / packed
        algorithm, expected = pin["integrity"].split("-", 1)
        actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if actual != expected:
            sys.exit(f"{name}@{pin['version']}: the registry's tarball does not match the pinned integrity")
        target = VENDOR / name
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for source, kept in pin["files"].items():
                member = archive.extractfile(f"package/{source}")
                if member is None:
                    sys.exit(f"{name}: {source} is not in the package")
                data = member.read()
                (target / kept).write_bytes(data)
                pin.setdefault("sha256", {})[kept] = sha256(data)
    print(f"{name}@{pin['version']}: {', '.join(pin['files'].values())}")


def main() -> None:
    manifest = json.loads(MANIFEST.read_text())
    for name, pin in manifest.items():
        fetch(name, pin)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
