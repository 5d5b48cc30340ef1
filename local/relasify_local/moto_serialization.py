"""moto's DynamoDB responses with attribute values copied as they are, not walked shape by shape.

moto (5.2) serialises every response through botocore's output shapes. For each AttributeValue it
asks its alias providers for all ten members (S, N, B, SS, NS, BS, M, L, NULL, BOOL), so a response of
25 contacts costs thousands of lookups: about a third of the emulator's CPU under the broadcast
benchmark (py-spy, `--gil`). In moto's results, attribute values are already in wire form (strings,
numbers as strings, booleans, nested M and L), so `install()` copies them; anything else (binary B/BS,
which need base64, or an unexpected shape) takes moto's own path. The output is the same:
`tests/integration/test_moto_serialization.py` compares both serialisers.
"""

from __future__ import annotations

from typing import Any

_STRING_MEMBERS = ("S", "N")
_BOOLEAN_MEMBERS = ("BOOL", "NULL")
_SET_MEMBERS = ("SS", "NS")

_original: dict[str, Any] = {}


def wire_attribute_value(value: Any) -> dict[str, Any] | None:
    """The AttributeValue as moto's serialiser would write it, or None when only moto's path knows."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for member, member_value in value.items():
        if member_value is None:
            continue  # moto's serialiser leaves out members that are None
        if member in _STRING_MEMBERS:
            if type(member_value) is not str:
                return None
            out[member] = member_value
        elif member in _BOOLEAN_MEMBERS:
            if type(member_value) is not bool:
                return None
            out[member] = member_value
        elif member in _SET_MEMBERS:
            if type(member_value) is not list or any(type(item) is not str for item in member_value):
                return None
            out[member] = list(member_value)
        elif member == "M":
            if type(member_value) is not dict:
                return None
            mapped: dict[str, Any] = {}
            for name, nested in member_value.items():
                wire = wire_attribute_value(nested)
                if wire is None:
                    return None
                mapped[name] = wire
            out[member] = mapped
        elif member == "L":
            if type(member_value) is not list:
                return None
            listed: list[Any] = []
            for nested in member_value:
                wire = wire_attribute_value(nested)
                if wire is None:
                    return None
                listed.append(wire)
            out[member] = listed
        else:
            return None  # B, BS (base64) or a member moto's path must judge
    return out


def install() -> None:
    """Idempotent."""
    from moto.core.serialize import BaseJSONSerializer

    if "structure" in _original:
        return
    moto_structure = BaseJSONSerializer._serialize_type_structure
    _original["structure"] = moto_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue":
            wire = wire_attribute_value(value)
            if wire is not None:
                if key:
                    self._default_serialize(serialized, wire, shape, key)
                else:
                    serialized.update(wire)
                return
        moto_structure(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own serialiser back (tests compare the two)."""
    from moto.core.serialize import BaseJSONSerializer

    moto_structure = _original.pop("structure", None)
    if moto_structure is not None:
        BaseJSONSerializer._serialize_type_structure = moto_structure  # type: ignore[method-assign]
