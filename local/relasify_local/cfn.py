"""Read `template.yaml` so local resources and test tables are built from the same schema
that `sam deploy` creates (the schema cannot drift)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...) as dicts."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@lru_cache(maxsize=4)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources_of_type(resource_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    tpl = template or load_template()
    return {name: res for name, res in tpl.get("Resources", {}).items() if res.get("Type") == resource_type}


def table_create_kwargs(logical_id: str, table_name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """boto3 `create_table` arguments for the DynamoDB table `logical_id` in the template."""
    props = resources_of_type("AWS::DynamoDB::Table", template)[logical_id]["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in props["GlobalSecondaryIndexes"]
        ]
    return kwargs


def ttl_attribute(logical_id: str, template: dict[str, Any] | None = None) -> str | None:
    props = resources_of_type("AWS::DynamoDB::Table", template)[logical_id]["Properties"]
    spec = props.get("TimeToLiveSpecification") or {}
    return spec.get("AttributeName") if spec.get("Enabled") else None


def create_tables(dynamodb_client: Any, names: dict[str, str], template: dict[str, Any] | None = None) -> None:
    """Create every table named in `names` ({logical id: physical name}) with its TTL setting."""
    for logical_id, table_name in names.items():
        dynamodb_client.create_table(**table_create_kwargs(logical_id, table_name, template))
        attr = ttl_attribute(logical_id, template)
        if attr:
            dynamodb_client.update_time_to_live(
                TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attr}
            )
