"""The ledger suite, run on SQLite and on a real PostgreSQL (tests/postgres.py): the same rows in
and out, the same search, the schema migrated forward on open with its version in the database,
and the tracker's lease taken atomically by exactly one of several replicas."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from app.endpoint.states import JobState
from app.studio import migrations
from app.studio.cost import Actual, Quote
from app.studio.db import open_database
from app.studio.forms import FormValues
from app.studio.ledger import Ledger, Timing
from tests.helpers import in_threads

QUOTE = Quote(gpu="H100 PRO", per_s=0.00116, execution_s=60.0, dollars=0.0696)
FORM = FormValues(pipeline="t2v_14b", mode="turbo", prompt="a red kite", resolution="480p square",
                  seconds=3.0, seed=7, randomize=False)  # fmt: skip


def _create(ledger: Ledger, prompt: str = "a red kite", **kw) -> str:
    return ledger.create(
        template=kw.pop("template", "t2v_14b"), mode="turbo", params={"prompt": prompt, "seed": 7},
        workflow={"3": {"class_type": "KSampler"}}, quote=QUOTE, gpu="H100 PRO", form=FORM, **kw,
    )  # fmt: skip


def test_rows_go_in_and_come_out_typed(ledger_url):
    ledger = Ledger(ledger_url)
    rid = _create(ledger, user="ada", recipe={"template_version": 3})
    row = ledger.get(rid)
    assert (row.state, row.user, row.quote, row.form) == (JobState.SUBMITTING, "ada", QUOTE, FORM)
    assert row.workflow == {"3": {"class_type": "KSampler"}}
    assert row.recipe == {"template_version": 3}
    assert ledger.get(rid, workflow=False).workflow == {} and ledger.workflow(rid) == row.workflow
    bill = Actual(billed_s=62, dollars=0.0719, delay_s=2.0)
    ledger.update(rid, job_id="job-1", state=JobState.COMPLETED, execution_ms=61500, cost=bill,
                  finished_at=time.time(), progress={"stage": "done"})  # fmt: skip
    again = Ledger(ledger_url).get(rid)  # a second studio (or a restart) reads the same row
    assert (again.job_id, again.state, again.cost, again.progress) == (
        "job-1", JobState.COMPLETED, bill, {"stage": "done"})  # fmt: skip
    assert isinstance(again.finished_at, float) and again.finished_at > 1.7e9  # full precision
    assert [r.id for r in ledger.finished_with_timing()] == [rid] and ledger.live() == []
    assert ledger.timings() == [Timing(rid, "t2v_14b", "turbo", "H100 PRO", 61500)]
    assert ledger.get("wp-unknown") is None and ledger.workflow("wp-unknown") == {}


def test_live_recent_since_and_search(ledger_url):
    ledger = Ledger(ledger_url)
    start = time.time()
    kite = _create(ledger, "A Red Kite over 100% dunes")
    heron = _create(ledger, "a heron_in fog", template="i2v_14b")
    ledger.update(heron, job_id="j2", state=JobState.IN_PROGRESS)
    assert [r.id for r in ledger.live()] == [kite, heron]
    assert [r.id for r in ledger.recent(1)] == [heron]
    assert {r.id for r in ledger.since(start - 1)} == {kite, heron}
    assert [r.id for r in ledger.search("red kite")] == [kite]  # case-insensitive substring
    (light,) = ledger.search("red kite", workflow=False)  # the gallery's: no filled workflow
    assert light.workflow == {} and light == dataclasses.replace(ledger.get(kite), workflow={})
    assert [r.id for r in ledger.search("100%")] == [kite]  # % and _ are literal
    assert [r.id for r in ledger.search("n_i")] == [heron]
    assert ledger.search("n%i") == []
    assert [r.id for r in ledger.search(heron[-6:])] == [heron]  # the row id
    assert [r.id for r in ledger.search(template="i2v_14b")] == [heron]
    assert [r.id for r in ledger.search(states=("IN_PROGRESS",))] == [heron]
    assert ledger.search(states=()) == []


def test_the_schema_version_is_in_the_database_and_opening_again_changes_nothing(ledger_url):
    Ledger(ledger_url)
    db = open_database(ledger_url)
    assert migrations.version(db) == migrations.LATEST == 6
    assert {"lease_owner", "lease_until", "form", "user"} <= set(db.columns("jobs"))
    assert migrations.migrate(db, lambda: 0) == migrations.LATEST  # nothing left to do
    rows = db.execute("SELECT version FROM schema_version").rows
    assert rows == [{"version": 6}]


def test_a_row_an_older_tracker_left_unknown_is_followed_again(ledger_url):
    """Step 6: an answer without a status was once written as state UNKNOWN, which nothing
    follows; such a row with a RunPod id is live again (the tracker asks where it is)."""
    ledger = Ledger(ledger_url)
    rid = _create(ledger)
    db = open_database(ledger_url)
    db.execute("UPDATE jobs SET job_id='job-9', state='UNKNOWN' WHERE id=?", (rid,))
    db.execute("UPDATE schema_version SET version=5")
    assert ledger.live() == []
    Ledger(ledger_url)  # a studio of this version starts
    assert [(r.id, r.state) for r in ledger.live()] == [(rid, JobState.IN_PROGRESS)]


def test_replicas_starting_at_once_migrate_one_after_the_other(ledger_url):
    assert in_threads(lambda: Ledger(ledger_url), 4) == []
    assert migrations.version(open_database(ledger_url)) == migrations.LATEST


def test_studios_opening_a_new_sqlite_file_together_all_start(tmp_path):
    """SQLite refuses the switch to WAL at once (no busy wait) while another connection makes it
    on a new file; every studio opening the file still starts (before the retry: ~5 % of files)."""
    for n in range(60):
        url = f"sqlite:///{tmp_path / f'ledger-{n}.sqlite3'}"
        assert in_threads(lambda url=url: Ledger(url), 6) == []


def test_a_lease_is_held_by_one_owner_until_it_expires(ledger_url):
    ledger = Ledger(ledger_url)
    rid = _create(ledger, owner="replica-a", lease_s=30)
    assert not ledger.claim(rid, "replica-b", 30)  # A is submitting it
    assert ledger.claim(rid, "replica-a", 30)  # renewing one's own lease
    assert ledger.update_owned(rid, "replica-a", state=JobState.IN_QUEUE)
    assert not ledger.update_owned(rid, "replica-b", state=JobState.LOST)
    assert ledger.get(rid).state == JobState.IN_QUEUE
    assert ledger.claim(rid, "replica-a", -1)  # A's lease ran out (it died)
    assert ledger.claim(rid, "replica-b", 30) and not ledger.claim(rid, "replica-a", 30)
    ledger.release("replica-b")  # B stops cleanly: the row is free at once
    assert ledger.claim(rid, "replica-a", 30)


def test_a_final_row_is_nobodys_to_claim(ledger_url):
    """A final row is nobody's, its lease freed or not. Another replica that read the row
    live just before must not take it then (it would poll RunPod for a job that has ended,
    and could store its result a second time)."""
    ledger = Ledger(ledger_url)
    rid = _create(ledger, owner="replica-b", lease_s=30)
    ledger.update(rid, job_id="job-b", state=JobState.IN_PROGRESS)
    assert ledger.get(rid).live and not ledger.claim(rid, "replica-a", 30)
    ledger.update(rid, state=JobState.COMPLETED, lease_owner=None, lease_until=None)
    assert not ledger.claim(rid, "replica-a", 30)
    assert not ledger.claim(rid, "replica-b", 30)  # not even by the replica that held it


def test_search_is_case_insensitive_beyond_ascii(ledger_url):
    ledger = Ledger(ledger_url)
    rid = _create(ledger, "Café ÉCOLE at dawn, Ωmega")
    for text in ("café", "CAFÉ", "école", "École", "ωmega", "ÉCOLE AT", "caf\0é"):
        assert [r.id for r in ledger.search(text)] == [rid], text  # a NUL typed: left out


def test_a_caller_without_a_name_lists_nothing(ledger_url):
    """Under APP_AUTH a caller with no user name sees no row: its listing filter matches none,
    on PostgreSQL too (which refuses a NUL in a query's text)."""
    from app.studio.owners import Caller

    ledger = Ledger(ledger_url)
    _create(ledger, user="ada")
    _create(ledger)
    assert ledger.search("", user=Caller("").scope) == []
    assert len(ledger.search("", user=Caller(None, admin=True).scope)) == 2


def test_a_chains_segment_is_found_by_its_index(ledger_url):
    ledger = Ledger(ledger_url)
    _create(ledger, chain={"id": "ch-1", "index": 0, "parent": None})
    _create(ledger, chain={"id": "ch-1", "index": 10, "parent": None})
    assert ledger.has_segment("ch-1", 0) and ledger.has_segment("ch-1", 10)
    assert not ledger.has_segment("ch-1", 1) and not ledger.has_segment("ch-2", 0)


def test_a_final_row_is_written_by_no_lease_holder(ledger_url):
    """A replica's writes while it holds a job (`update_owned`) match live rows only: an answer
    that arrives after the job ended (ended by another replica, its lease kept as a record of
    who did) changes nothing."""
    ledger = Ledger(ledger_url)
    rid = _create(ledger, owner="replica-a", lease_s=30)
    ledger.update(rid, job_id="job-a", state=JobState.IN_PROGRESS)
    assert ledger.update_owned(rid, "replica-a", progress={"stage": "sampling"})
    assert ledger.update_owned(rid, "replica-a", state=JobState.COMPLETED)
    ended = ledger.get(rid)
    assert not ledger.update_owned(rid, "replica-a", state=JobState.IN_PROGRESS)
    assert not ledger.update_owned(rid, "replica-a", progress={"stage": "delivering"})
    assert ledger.get(rid) == ended


def test_run_answer_and_abandoned_submit_each_write_only_if_first(ledger_url):
    """/run's answer (`sent`) and the scan's LOST for a submit nobody finished (`abandon`):
    each a conditional write, so whichever comes second of the two changes nothing, except
    that a job id arriving after LOST makes the row live again (the job exists)."""
    ledger = Ledger(ledger_url)
    held = _create(ledger, owner="replica-a", lease_s=30)
    assert not ledger.abandon(held, "gone")  # its submitting replica still holds it
    expired = _create(ledger, owner="replica-a", lease_s=-1)
    assert ledger.sent(expired, "job-1", JobState.IN_QUEUE, owner="replica-a", lease_s=30)
    assert not ledger.abandon(expired, "gone")  # the answer came first: the job is followed
    assert ledger.get(expired).state == JobState.IN_QUEUE
    late = _create(ledger, owner="replica-a", lease_s=-1)
    assert ledger.abandon(late, "gone")
    assert (ledger.get(late).state, ledger.get(late).error) == (JobState.LOST, "gone")
    assert not ledger.abandon(late, "gone")  # once
    assert ledger.sent(late, "job-2", JobState.IN_PROGRESS, owner="replica-b", lease_s=30)
    row = ledger.get(late)
    assert (row.state, row.job_id, row.error, row.finished_at) == (
        JobState.IN_PROGRESS, "job-2", None, None)  # fmt: skip
    assert not ledger.claim(late, "replica-a", 30)  # held by the replica that sent it
    assert not ledger.sent(late, "job-3", JobState.IN_QUEUE, owner="replica-b", lease_s=30)
    assert ledger.get(late).job_id == "job-2"


def test_of_many_replicas_claiming_at_once_exactly_one_gets_the_lease(ledger_url):
    rids = [_create(Ledger(ledger_url)) for _ in range(5)]
    winners: dict[str, list[str]] = {rid: [] for rid in rids}
    barrier = threading.Barrier(8, timeout=60)

    def replica(name: str) -> None:
        ledger = Ledger(ledger_url)
        barrier.wait()
        for rid in rids:
            if ledger.claim(rid, name, 30):
                winners[rid].append(name)

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(names) == 1 for names in winners.values()), winners


def test_a_transaction_is_one_step_for_every_writer(ledger_url):
    """Check-then-write inside `transaction()` admits exactly one of many concurrent writers
    (what a budget check with the row it admits needs), on both databases."""
    barrier = threading.Barrier(6, timeout=60)
    admitted: list[str] = []

    def writer(name: str) -> None:
        ledger = Ledger(ledger_url)
        barrier.wait()
        with ledger.transaction():
            if not ledger.recent(1):  # the "budget": one row in all
                admitted.append(_create(ledger, name))

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1 and [r.id for r in Ledger(ledger_url).recent(10)] == admitted


def test_an_atomic_step_is_one_step_for_every_writer(ledger_url):
    """Check-then-write in `atomic()` admits exactly one of many concurrent writers, whether
    they share a ledger (one studio's threads: on SQLite, steps committed together) or not."""
    barrier = threading.Barrier(12, timeout=60)
    shared = Ledger(ledger_url)
    admitted: list[str] = []

    def admit(ledger: Ledger, name: str) -> None:
        if not ledger.recent(1):  # the "budget": one row in all
            admitted.append(_create(ledger, name))

    def writer(name: str, own: bool) -> None:
        ledger = Ledger(ledger_url) if own else shared
        barrier.wait()
        ledger.atomic(lambda: admit(ledger, name))

    threads = [threading.Thread(target=writer, args=(f"w{i}", i % 3 == 0)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1 and [r.id for r in Ledger(ledger_url).recent(10)] == admitted


@pytest.mark.parametrize(
    "password",
    ["PgSecret#PW", "PgSecret?PW", "PgSecret/PW", "PgSecret%ZZPW", "Pg@Secret", "p%40ssSecret"],
)
def test_a_database_password_is_kept_out_of_messages_however_it_is_written(password):
    """A '#', '?' or '/' left unencoded, or a bad %-escape, in WANPOD_DATABASE_URL's password:
    the messages that name the URL show *** for it, and the studio's secrets hold it (as
    written and decoded) for every other message. urlsplit saw no password in the first three,
    and the driver's refusal of a bad escape quoted it."""
    from urllib.parse import unquote

    from app.errors import ConfigError
    from app.studio.db import PostgresDatabase, redact, url_secrets

    url = f"postgresql://wanpod:{password}@127.0.0.1:1/wanpod"  # nothing listens on port 1
    assert redact(url) == "postgresql://wanpod:***@127.0.0.1:1/wanpod"
    assert password in url_secrets(url) and unquote(password) in url_secrets(url)
    with pytest.raises(ConfigError) as refused:  # LedgerUnreachable is a ConfigError
        PostgresDatabase(url)._connect()
    assert "PgSecret" not in str(refused.value) and "Secret" not in str(refused.value)
    assert "WANPOD_DATABASE_URL" in str(refused.value), str(refused.value)
