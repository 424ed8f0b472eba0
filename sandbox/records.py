"""Dataclasses to and from the JSON records the store keeps: datetimes as ISO 8601 text with their offset."""
import dataclasses
from datetime import datetime


def to_record(obj, times):
    """The dataclass `obj` as a JSON-able dict; the fields named in `times` hold datetimes (or None)."""
    record = dataclasses.asdict(obj)
    for name in times:
        record[name] = record[name].isoformat() if record[name] else None
    return record


def from_record(cls, record, times):
    """The dataclass `cls` rebuilt from `to_record`'s output; unknown keys are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in record.items() if k in names}
    for name in times:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    return cls(**values)
