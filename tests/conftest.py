from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "catalog.yaml"


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


#: Test files that take minutes (their module fixtures start sandboxes of their own). They
#: are scheduled first, so that with xdist's --dist loadfile none of them starts last and
#: becomes the run's tail; the order inside each group stays pytest-randomly's.
HEAVY_FILES = frozenset(
    {
        "test_dr.py",
        "test_reliability.py",
        "test_ha.py",
        "test_migrate.py",
        "test_verify.py",
        "test_cluster.py",
        "test_cluster_ha.py",
        # sandboxes of both operators (VSO 1.4.1 and v0.1.0)
        "test_operator_sync.py",
        "test_rotation.py",
    }
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # drills run only when asked for by marker (-m drill: invoke test --drills), alone
    if "drill" not in (config.option.markexpr or ""):
        drills = [i for i in items if i.get_closest_marker("drill")]
        if drills:
            config.hook.pytest_deselected(items=drills)
            items[:] = [i for i in items if not i.get_closest_marker("drill")]
    items.sort(key=lambda item: item.path.name not in HEAVY_FILES)
