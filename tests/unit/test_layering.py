"""The layering rule: handlers (functions/), the web layer and the services never touch AWS or HTTP
client types; only the data-access modules (relasify.data) and the WhatsApp client (relasify.whatsapp)
do. Read from the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ABOVE_DATA_ACCESS = [
    REPO / "functions",
    REPO / "layers/domain/relasify/services",
    REPO / "layers/domain/relasify/web",
]
CLIENT_PACKAGES = {"boto3", "botocore", "pynamodb", "httpx", "requests", "urllib3", "aiobotocore"}


def client_imports(source: str, label: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=label)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [f"{label}:{node.lineno} imports {name}" for name in names if name.split(".")[0] in CLIENT_PACKAGES]
    return found


@pytest.mark.parametrize("root", ABOVE_DATA_ACCESS, ids=lambda root: str(root.relative_to(REPO)))
def test_no_aws_or_http_client_types_above_the_data_access_modules(root: Path) -> None:
    sources = sorted(root.rglob("*.py"))
    assert sources, root
    found = [line for path in sources for line in client_imports(path.read_text(), str(path.relative_to(REPO)))]
    assert found == []


def test_a_lazy_import_inside_a_function_is_seen() -> None:
    source = "def f():\n    from botocore.exceptions import ClientError\n    import boto3\n    return boto3\n"
    assert client_imports(source, "probe.py") == [
        "probe.py:2 imports botocore.exceptions",
        "probe.py:3 imports boto3",
    ]
