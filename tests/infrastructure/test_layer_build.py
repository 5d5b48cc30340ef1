"""The domain layer's build (layers/domain/Makefile, run by `sam build`): our package ships compiled
to bytecode, so a cold start on Lambda's read-only /opt does not compile it again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from relasify_local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = REPO_ROOT / "layers" / "domain"
UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, source not checked


def _make(target: str, artifacts: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(LAYER_DIR), target, f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}", *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def test_sam_builds_the_layer_with_its_makefile() -> None:
    layer = load_template()["Resources"]["DomainLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/domain"
    assert "build-DomainLayer:" in (LAYER_DIR / "Makefile").read_text()


def test_every_module_ships_with_unchecked_hash_bytecode(tmp_path: Path) -> None:
    built = _make("sources", tmp_path, "ALLOW_OTHER_PYTHON=1")
    assert built.returncode == 0, built.stderr
    package = tmp_path / "python" / "relasify"
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 30
    tag = sys.implementation.cache_tag
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), f"no bytecode for {source.relative_to(tmp_path)}"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == UNCHECKED_HASH_FLAGS, f"{compiled.name}: flags {flags:#b}"
    # The built package is what a container imports (ahead of any other copy on the path).
    probe = subprocess.run(
        [sys.executable, "-c", "import relasify.services.workspaces, relasify; print(relasify.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "python"), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert probe.stdout.strip() == str(package / "__init__.py")


def test_bytecode_for_another_python_than_the_runtime_is_refused(tmp_path: Path) -> None:
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == "3.13":
        return  # this interpreter is the runtime's: nothing to refuse
    built = _make("sources", tmp_path)
    assert built.returncode != 0
    assert "bytecode must be compiled by Python 3.13" in built.stderr
    assert not (tmp_path / "python" / "relasify").exists()
