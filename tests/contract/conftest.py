"""schemathesis 4.32 under pytest 9 gives every operation's test the same node id (their names differ: `test_x[GET
/healthz]`, ...). pytest-xdist schedules tests by node id, so `make test` in several processes ran one operation's
fuzzing and reported the other 39 nowhere. Each item gets the node id its name says; collection stops if any two
still share one."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        label = getattr(item, "operation_label", None)  # schemathesis's items
        if label and not item.nodeid.endswith("]"):
            item._id = item._id.with_params(label)  # pytest 9's structured node id (no public setter)
    fuzzed = [item.nodeid for item in items if getattr(item, "operation_label", None)]
    if len(set(fuzzed)) != len(fuzzed):
        raise pytest.UsageError("schemathesis's tests share node ids: pytest-xdist would run only one of each")
