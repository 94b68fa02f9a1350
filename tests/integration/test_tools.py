"""Building the operator: the source archive's sha256 is checked before anything is unpacked,
and when neither the archive nor ``go install`` works the error gives both reasons. (The Go
module proxy is switched off here: nothing leaves the machine.)"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bootstrap.core.errors import ToolError
from bootstrap.tooling import tools, versions


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-module-cache"))
    monkeypatch.setenv("GOFLAGS", "")
    return tmp_path / "tools"


def _archive(path: Path, version: str = versions.VSO) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"module example.com/not-the-operator\n"
        info = tarfile.TarInfo(f"vault-secrets-operator-{version}/go.mod")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("version", "archive", "sha256"),
    [
        (versions.VSO, versions.VSO_ARCHIVE, versions.VSO_ARCHIVE_SHA256),
        (versions.VSO_V0, versions.VSO_V0_ARCHIVE, versions.VSO_V0_ARCHIVE_SHA256),
    ],
)
def test_a_wrong_archive_is_refused_and_both_reasons_are_given(
    offline: Path, tmp_path: Path, version: str, archive: str, sha256: str
) -> None:
    fake = _archive(tmp_path / archive, version)
    name = tools.operator_tool(version)
    with pytest.raises(ToolError) as err:
        tools.install([name], offline, sources={name: fake})
    message = str(err.value)
    assert f"{name} {version} could not be built" in message
    assert f"from {fake}: {fake} has sha256 {tools.sha256_of(fake)}" in message
    assert f"expected {sha256}" in message
    assert f"with go install {versions.VSO_MODULE}@v{version}:" in message
    assert "GOPROXY=off" in message
    assert tools.find(name, offline) is None  # nothing installed


def test_a_missing_archive_is_named(offline: Path, tmp_path: Path) -> None:
    with pytest.raises(ToolError) as err:
        tools.install(
            ["vault-secrets-operator"],
            offline,
            sources={"vault-secrets-operator": tmp_path / "absent.tar.gz"},
        )
    assert f"no archive at {tmp_path / 'absent.tar.gz'}" in str(err.value)
    assert "with go install" in str(err.value)


def test_the_environment_s_own_kubectl_is_found_without_path(tmp_path: Path) -> None:
    """Issue 24, item 4: `.venv/bin/invoke tools.install` run directly (as a script or cron
    job does, PATH without the venv) found no kubectl although `.venv/bin/kubectl` is there."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from bootstrap.tooling import tools; "
        "print(tools.find('kubectl', Path(sys.argv[1])))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found = out.stdout.strip()
    assert found != "None" and Path(found).name == "kubectl", found
