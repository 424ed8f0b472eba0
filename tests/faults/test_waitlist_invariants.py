"""check-invariants covers kept seats and the waitlist: a normal waitlist story passes; each invariant broken by hand
is found."""
import datetime as dt
import os
import subprocess
import sys

import pytest

from models import WaitlistEntry
from services.invariants import check_invariants
from tests.harness import ROOT
from tests.waitlist.helpers import cancel, full_session, in_line


@pytest.fixture
def overrides(fault_db_url):
    return {"DATABASE_URL": fault_db_url, "RECONCILE_INTERVAL_SECONDS": "60", "RUN_JOBS": "0"}


def _broken(found):
    return {(v.check, v.detail.split(" status=")[0]) for v in found if not v.warning}


async def _story(api):
    """A session of one seat, three parents in line, the third left, the holder cancelled: the first offered, the
    second waiting. Returns (schedule id, [entries])."""
    sid, [(holder, held)] = await full_session(api)
    line = await in_line(api, sid, 3)
    status, _, _ = await api.call("DELETE", f"/api/v1/waitlist/{line[2][2]['id']}", token=line[2][0])
    assert status == 200
    await cancel(api, holder, held)
    entries = list(await WaitlistEntry.select().where(WaitlistEntry.course_schedule == sid)
                   .order_by(WaitlistEntry.id).aio_execute())
    assert [e.status for e in entries] == ["offered", "waiting", "left"]
    return sid, entries


@pytest.mark.gen_test(timeout=90)
async def test_a_waitlist_story_passes_and_broken_ones_are_found(api, service_env):
    sid, (offered, waiting, left) = await _story(api)
    assert await check_invariants(60) == []
    run = subprocess.run([sys.executable, "manage.py", "check-invariants"], cwd=ROOT,
                         env={**os.environ, **service_env}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "all invariants hold", run.stdout + run.stderr
    # An offer kept long past its end (nobody lapsed it): a seat held for no one.
    past = dt.datetime.utcnow() - dt.timedelta(minutes=10)
    await WaitlistEntry.update(offer_expires_at=past).where(WaitlistEntry.id == offered.id).aio_execute()
    assert ("stale_offer", f"waitlist entry {offered.id} schedule={sid}") in _broken(await check_invariants(60))
    await WaitlistEntry.update(offer_expires_at=offered.offer_expires_at).where(
        WaitlistEntry.id == offered.id).aio_execute()
    # A status written behind the lifecycle's back (no audit row), and an ended entry still in the unique key.
    await WaitlistEntry.update(status="lapsed").where(WaitlistEntry.id == waiting.id).aio_execute()
    broken = _broken(await check_invariants(60))
    assert ("audit", f"waitlist entry {waiting.id} schedule={sid}") in broken
    assert ("waitlist", f"waitlist entry {waiting.id} schedule={sid}") in broken
    # A booked entry that names no order of its parent.
    await WaitlistEntry.update(status="booked", live_user=None).where(WaitlistEntry.id == left.id).aio_execute()
    assert ("waitlist", f"waitlist entry {left.id} schedule={sid}") in _broken(await check_invariants(60))
    # A seat kept beyond the capacity (an offer made for no free seat) is counted as taken: over capacity.
    await WaitlistEntry.update(status="waiting", live_user=waiting.user_id).where(
        WaitlistEntry.id == waiting.id).aio_execute()
    await WaitlistEntry.update(status="left", live_user=None).where(WaitlistEntry.id == left.id).aio_execute()
    await WaitlistEntry.update(status="offered", offered_at=past, offer_expires_at=offered.offer_expires_at).where(
        WaitlistEntry.id == waiting.id).aio_execute()
    over = [v for v in await check_invariants(60) if v.check == "capacity"]
    assert over and "kept seats" in over[0].detail


@pytest.mark.gen_test(timeout=90)
async def test_a_free_seat_while_parents_wait_is_worth_a_look(api):
    sid, (offered, waiting, _) = await _story(api)
    await WaitlistEntry.update(status="left", live_user=None).where(WaitlistEntry.id == offered.id).aio_execute()
    found = [v for v in await check_invariants(60) if v.check == "waitlist" and v.warning]
    assert found and f"schedule={sid} has 1 seat(s) free while parents wait" in found[0].detail
