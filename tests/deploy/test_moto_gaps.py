"""Each fill in `tests.deploy.moto_gaps` is for a gap moto still has: after a moto upgrade, a failure here names the
fill to delete (and `filled()` refuses to install it until then)."""

from __future__ import annotations

import pytest

from tests.deploy.moto_gaps import GAPS, Gap

pytestmark = pytest.mark.deploy


@pytest.mark.parametrize("gap", GAPS, ids=lambda gap: gap.name)
def test_moto_still_has_the_gap(gap: Gap) -> None:
    assert gap.probe(), f"moto closed the gap {gap.name!r} ({gap.why}): delete its fill in tests/deploy/moto_gaps.py"
