"""The functions' build (functions/*/Makefile, run by `sam build`): the handler modules ship compiled to
bytecode, so a cold start on Lambda's read-only /var/task does not compile them again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from relasify_local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, source not checked


def _functions() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and str(resource["Properties"].get("CodeUri", "")).startswith("functions/")
    }


def _sam_build(logical_id: str, code_uri: str, scratch: Path, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """What `sam build` does for BuildMethod makefile (aws-lambda-builders' CustomMakeWorkflow): copy the
    CodeUri folder to a scratch directory, then run the folder's Makefile there. A folder with its own
    requirements builds only `sources` here (its `dependencies` download arm64 wheels)."""
    source = REPO_ROOT / code_uri
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    target = "sources" if (source / "requirements.txt").exists() else f"build-{logical_id}"
    return subprocess.run(
        [
            "make",
            "-s",
            "--makefile",
            str(source / "Makefile"),
            target,
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
            "ALLOW_OTHER_PYTHON=1",
        ],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_function_is_built_by_its_folders_makefile() -> None:
    functions = _functions()
    assert len(functions) >= 10
    for logical_id, function in functions.items():
        assert function.get("Metadata", {}).get("BuildMethod") == "makefile", logical_id
        makefile = (REPO_ROOT / function["Properties"]["CodeUri"] / "Makefile").read_text()
        assert f"build-{logical_id}" in makefile, f"{logical_id}: no build target in its folder's Makefile"


@pytest.mark.parametrize("logical_id", sorted(_functions()))
def test_the_handler_ships_with_unchecked_hash_bytecode(logical_id: str, tmp_path: Path) -> None:
    properties = _functions()[logical_id]["Properties"]
    artifacts = tmp_path / "artifacts"
    built = _sam_build(logical_id, properties["CodeUri"], tmp_path / "scratch", artifacts)
    assert built.returncode == 0, built.stderr
    sources = sorted(artifacts.glob("*.py"))
    shipped = {source.name for source in sources}
    assert shipped == {source.name for source in (REPO_ROOT / properties["CodeUri"]).glob("*.py")}
    assert not (artifacts / "Makefile").exists()
    assert not (artifacts / "requirements.txt").exists()
    tag = sys.implementation.cache_tag
    for source in sources:
        compiled = artifacts / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), f"no bytecode for {source.name}"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == UNCHECKED_HASH_FLAGS, f"{compiled.name}: flags {flags:#b}"
    # The handler imports from the built folder (as Lambda imports it from /var/task) and uses its bytecode:
    # with the sources removed, only the compiled modules can load.
    module = properties["Handler"].rsplit(".", 1)[0]
    for source in sources:
        source.unlink()
    for compiled in (artifacts / "__pycache__").glob("*.pyc"):
        compiled.rename(artifacts / f"{compiled.name.split('.')[0]}.pyc")
    layer_and_local = os.pathsep.join([str(REPO_ROOT / "layers" / "domain"), str(REPO_ROOT / "local")])
    probe = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__); assert callable({module}.handler)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(artifacts), layer_and_local]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_DEFAULT_REGION": "ap-southeast-3",
        },
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == str(artifacts / f"{module}.pyc")


def test_bytecode_for_another_python_than_the_runtime_is_refused(tmp_path: Path) -> None:
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == "3.13":
        return  # this interpreter is the runtime's: nothing to refuse
    source = REPO_ROOT / "functions" / "webhook"
    built = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(source),
            "build-WebhookProcessorFunction",
            f"ARTIFACTS_DIR={tmp_path}",
            f"PYTHON={sys.executable}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode != 0
    assert "bytecode must be compiled by Python 3.13" in built.stderr
    assert not list(tmp_path.glob("*.py"))
