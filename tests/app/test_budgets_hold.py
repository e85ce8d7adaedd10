"""Issue 15 section 3: budgets and limits that hold. A bring-your-own workflow is quoted and
limit-checked from the values the graph will use (links through primitive nodes), its image
inputs must be the job's uploads, the budget check and the ledger row are one step, and a hostile
endpoint's timings never refund the budget."""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace

import pytest

from app.endpoint.states import JobState
from app.errors import GuardrailError, InputError
from app.settings import PRICES_PATH, Settings
from app.studio import cost, graph, timings
from app.studio.checks.gate import Gate, job_shape
from app.studio.checks.guardrails import Guardrails, check, row_dollars
from app.studio.checks.inputs import check_inputs, input_problems
from app.studio.jobs import Prepared, Studio
from app.studio.ledger import JobRow, Ledger
from app.studio.tracker import Tracker
from tests.helpers import wait_for
from workflows.fill import fill

PRICES = cost.load_prices(PRICES_PATH)


def literal() -> dict:
    """A BYO-shaped t2v workflow at 1344 px, 401 frames, 60 steps (the low-noise expert runs
    to the end of them), values written literally."""
    wf = copy.deepcopy(fill("t2v_14b", {"prompt": "x", "mode": "quality"}).workflow)
    for node in wf.values():
        ins = node["inputs"]
        if {"width", "height", "length"} <= set(ins):
            ins.update(width=1344, height=1344, length=401)
        if "steps" in ins:
            ins["steps"] = 60
        if ins.get("start_at_step"):
            ins["end_at_step"] = 10000
    return wf


def through_primitives(wf: dict) -> dict:
    """The same values fed through PrimitiveInt nodes (what the attack did)."""
    wf = copy.deepcopy(wf)
    for nid, node in list(wf.items()):
        for name in ("width", "height", "length", "steps"):
            if isinstance(node["inputs"].get(name), int):
                pid = f"p{nid}{name}"
                wf[pid] = {"class_type": "PrimitiveInt", "inputs": {"value": node["inputs"][name]}}
                node["inputs"][name] = [pid, 0]
    return wf


def test_linked_values_are_quoted_and_limited_like_literal_ones():
    wf = literal()
    linked = through_primitives(wf)
    assert any(n["class_type"] == "PrimitiveInt" for n in linked.values())
    a = cost.request_from_workflow("byo", "quality", wf)
    b = cost.request_from_workflow("byo", "quality", linked)
    assert (b.width, b.height, b.frames, b.steps) == (1344, 1344, 401, 60) and a == b
    q = cost.quote(b, "H100 PRO", PRICES)
    assert q.dollars > 0.4  # the attack was quoted $0.0012
    shape = job_shape(SimpleNamespace(request=b, quote=q))
    refused = {r.limit for r in check(shape, Guardrails())}
    assert {"width", "height", "frames", "job cost"} <= refused


def test_a_value_computed_at_run_time_is_refused_with_the_reason():
    wf = through_primitives(literal())
    pid = next(k for k, n in wf.items() if n["class_type"] == "PrimitiveInt")
    wf[pid] = {"class_type": "SimpleMath+", "inputs": {"value": "a*8", "a": 160}}
    with pytest.raises(graph.Unresolved) as info:
        cost.request_from_workflow("byo", "quality", wf)
    assert "SimpleMath+" in str(info.value) and "computed when the job runs" in str(info.value)
    with pytest.raises(InputError) as err:  # the page names the field
        cost.request_from_workflow("byo", "quality", wf)
    assert err.value.field == "workflow" and "cannot quote or check" in str(err.value)
    assert "node p" in str(err.value)
    loop = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": ["1", 0]}},
            "2": {"class_type": "KSampler", "inputs": {"steps": ["1", 0], "cfg": 1.0}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0]}}}  # fmt: skip
    with pytest.raises(graph.Unresolved, match="loop"):
        cost.request_from_workflow("byo", "quality", loop)


def test_byo_image_inputs_must_be_the_jobs_uploads():
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "wanpod_a_start.png"}}}
    assert input_problems(wf, ["wanpod_a_start.png"]) == []
    hostile = {
        "2": "../../etc/secret.png",
        "3": "/etc/passwd",
        "4": "x.png [output]",
        "5": "example.png",  # someone else's file in the input folder
        "6": ["7", 0],
    }
    for nid, value in hostile.items():
        wf[nid] = {"class_type": "LoadImage", "inputs": {"image": value}}
    wf["7"] = {"class_type": "PrimitiveString", "inputs": {"value": "../other.png"}}
    lines = input_problems(wf, ["wanpod_a_start.png"])
    assert len(lines) == 5, lines
    assert any("'../../etc/secret.png' points outside" in line for line in lines)
    assert any("node 5 (LoadImage)" in line and "not uploaded" in line for line in lines)
    assert any("node 6" in line and "'../other.png'" in line for line in lines)
    with pytest.raises(InputError) as info:
        check_inputs(wf, ["wanpod_a_start.png"])
    assert info.value.field == "workflow" and "node 3 (LoadImage)" in str(info.value)


def test_the_gate_surfaces_image_problems_in_every_preflight_mode(tmp_path):
    gate = Gate(limits=Guardrails(), ledger=Ledger(tmp_path / "l.sqlite3"))  # no inventory
    filled = fill("t2v_14b", {"prompt": "x", "mode": "turbo"})
    wf = {**filled.workflow, "99": {"class_type": "LoadImage", "inputs": {"image": "../k.png"}}}
    req = cost.request_from_workflow("t2v_14b", "turbo", wf)
    prep = Prepared(None, "t2v_14b", {}, SimpleNamespace(workflow=wf), req,
                    cost.quote(req, "A100", PRICES))  # fmt: skip
    with pytest.raises(InputError, match="node 99"):
        gate.before_run(prep, None, uploads=[])
    gate.before_run(prep, None)  # uploads not known: as before


class Accepting:
    """The far side of /run: takes every job (the test is about the studio's ledger)."""

    def __init__(self) -> None:
        self.sent = 0
        self.lock = threading.Lock()

    def run(self, job_input, policy=None):
        with self.lock:
            self.sent += 1
            return SimpleNamespace(id=f"job-{self.sent}", state=JobState.IN_QUEUE)


@pytest.mark.parametrize("attempt", range(3))
def test_ten_concurrent_submits_against_a_budget_for_one_accept_exactly_one(tmp_path, attempt):
    filled = fill("t2v_14b", {"prompt": "x", "mode": "turbo"})
    req = cost.request_from_workflow("t2v_14b", "turbo", filled.workflow)
    q = cost.quote(req, "H100 PRO", PRICES)
    prep = Prepared(None, "t2v_14b", dict(filled.params), filled, req, q)
    ledger = Ledger(tmp_path / f"ledger{attempt}.sqlite3")
    gate = Gate(limits=Guardrails(daily_usd=q.dollars * 1.5, job_usd=None), ledger=ledger)
    endpoint = Accepting()
    studio = Studio(
        settings=Settings.from_env({"WANPOD_DATA_DIR": str(tmp_path)}),
        forms={}, fill=fill, endpoint=endpoint, ledger=ledger,
        tracker=Tracker(ledger, None, tmp_path, PRICES), prices=PRICES, ops=gate,
    )  # fmt: skip
    start = threading.Barrier(10, timeout=60)
    accepted, refused = [], []

    def submit() -> None:
        start.wait()
        try:
            clearance = gate.before_run(prep, "ann")
            job_input = {"workflow": filled.workflow}
            args = (prep, "turbo", {}, job_input, clearance, "ann", {}, None)
            accepted.append(studio._send(*args))
        except GuardrailError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 1 and len(refused) == 9, (accepted, refused)
    assert endpoint.sent == 1 and len(ledger.since(0)) == 1
    assert all("daily budget" in r for r in refused)


def test_negative_or_endless_timings_are_refused_and_never_refund(tmp_path, caplog):
    assert cost.actual(-1_160_000_000, -5, "A100", PRICES).dollars == 0
    assert timings.plausible_ms(-1_160_000, "executionTime")[0] is None
    assert timings.plausible_ms(10**12, "executionTime", 7200_000)[1].endswith("limit of 7200 s")
    assert timings.plausible_ms(3000, "executionTime") == (3000, "")

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    quote = cost.Quote("A100", 0.001, 100.0, 0.1)
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=quote,
                        gpu="A100")  # fmt: skip
    ledger.update(rid, job_id="j1", state=JobState.IN_PROGRESS)
    answer = SimpleNamespace(state="FAILED", progress=None, output=None, error="boom",
                             delay_ms=-5, execution_ms=-1_160_000_000, worker_id=None)  # fmt: skip

    class Hostile:
        def status(self, job_id):
            return answer

    tracker = Tracker(ledger, Hostile(), tmp_path, PRICES, max_execution_s=7200)
    assert tracker._poll(rid) is False
    row = ledger.get(rid)
    assert row.execution_ms is None and row.delay_ms is None
    assert row.cost is not None and row.cost.dollars == pytest.approx(0.1)  # the quote, not -$1160
    assert "implausible timing refused: executionTime=-1160000000 is negative" in caplog.text


def answered(tmp_path, answer: SimpleNamespace) -> JobRow:
    """The row of a running job (quote: 100 s at $0.001/s) once the tracker has recorded
    `answer`, RunPod's /status, and ended it."""
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    quote = cost.Quote("A100", 0.001, 100.0, 0.1)
    rid = ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={}, quote=quote,
                        gpu="A100")  # fmt: skip
    ledger.update(rid, job_id="j1", state=JobState.IN_PROGRESS)
    endpoint = SimpleNamespace(status=lambda job_id: answer)
    tracker = Tracker(ledger, endpoint, tmp_path, PRICES, max_execution_s=7200).start()
    try:
        return wait_for(lambda: (r := ledger.get(rid)).final and r, 30, "the job's end")
    finally:
        tracker.stop()


def test_a_bad_delay_time_leaves_the_run_billed_by_its_execution_time(tmp_path):
    answer = SimpleNamespace(state="FAILED", progress=None, output=None, error="oom",
                             delay_ms=-40, execution_ms=600_000, worker_id=None)  # fmt: skip
    row = answered(tmp_path, answer)
    assert row.delay_ms is None and row.execution_ms == 600_000
    assert row.cost.billed_s == 600 and row.cost.partial  # not the quote's 100 s


@pytest.mark.parametrize("execution_ms, billed_s", [(3_000, 3), (-1_000, 100)])
def test_a_completed_job_whose_output_fails_is_billed_all_the_same(tmp_path, execution_ms,
                                                                    billed_s):  # fmt: skip
    """RunPod bills a run that ended COMPLETED with an error output (or no file, or one that
    cannot be stored): the FAILED row carries its cost, at the quote when its executionTime
    was refused, and counts against the budgets."""
    answer = SimpleNamespace(state="COMPLETED", progress=None, output={"error": "boom"}, error=None,
                             delay_ms=10, execution_ms=execution_ms, worker_id=None)  # fmt: skip
    row = answered(tmp_path, answer)
    assert row.state == "FAILED" and row.error == "boom"
    assert row.cost.billed_s == billed_s and row.cost.partial
    assert row_dollars(row) == row.cost.dollars > 0


def test_a_linked_or_image_reading_byo_workflow_is_refused_through_the_api(client, tmp_path):
    import json

    from gradio_client.exceptions import AppError

    from tests.app.test_api import byo_args
    from tests.helpers import COMFY_FIXTURES

    base = json.loads(
        (COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_text()
    )
    for node in base.values():
        if {"width", "height", "length"} <= set(node["inputs"]):
            node["inputs"].update(width=1344, height=1344, length=401)
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = 60
    linked = tmp_path / "linked.json"
    linked.write_text(json.dumps(through_primitives(base)))
    with pytest.raises(AppError, match=r"refused by the studio's limits") as info:
        client.predict(*byo_args(linked), api_name="/generate")
    assert "width: 1344 px" in str(info.value) and "frames: 401" in str(info.value)

    reader = json.loads(
        (COMFY_FIXTURES / "workflows" / "wan22_t2v_14B_lightx2v.api.json").read_text()
    )
    for nid in ("900", "901", "902"):  # the form fills two image slots; the third is extra
        reader[nid] = {"class_type": "LoadImage", "inputs": {"image": "../../../etc/secret.png"}}
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(reader))
    with pytest.raises(AppError) as info:
        client.predict(*byo_args(extra), api_name="/generate")
    assert "(LoadImage): image: '../../../etc/secret.png' points outside" in str(info.value)


def test_the_quote_line_warns_of_the_signed_in_users_own_daily_budget(tmp_path):
    """The form's quote line warns of every limit Generate would refuse the job for, the
    signed-in user's own daily budget included (it warned of the studio's only)."""
    from app.studio.forms import FormValues
    from app.ui.callbacks import Callbacks
    from tests.app.test_batch import offline_studio

    studio = offline_studio(tmp_path)
    values = {"pipeline": "t2v_14b", "mode": "turbo", "prompt": "a heron",
              "resolution": "480p square", "seed": 5, "randomize": False}  # fmt: skip
    q = studio.prepare(FormValues(**values)).quote
    ann_spent = q.dollars * 0.6  # ann's earlier job today: one more breaks her budget only
    rid = studio.ledger.create(template="t2v_14b", mode="turbo", params={}, workflow={},
                               quote=q, gpu="H100 PRO", user="ann")  # fmt: skip
    done = studio.ledger.get(rid).created_at
    studio.ledger.update(rid, state=JobState.COMPLETED, finished_at=done,
                         cost=cost.Actual(billed_s=1, dollars=ann_spent))  # fmt: skip
    limits = Guardrails(daily_usd=None, user_daily_usd=q.dollars * 1.5, job_usd=None)
    studio.ops = Gate(limits=limits, ledger=studio.ledger)
    api = Callbacks(studio, SimpleNamespace(values=lambda fields: FormValues(**fields)))  # type: ignore[arg-type]
    ann, bob = SimpleNamespace(username="ann"), SimpleNamespace(username="bob")
    line, _ = api.quoted(values, ann)  # type: ignore[arg-type]
    assert "Over the studio's limits" in line and "your daily budget" in line, line
    with pytest.raises(GuardrailError, match="your daily budget"):
        studio.ops.hold(studio.prepare(FormValues(**values)), "ann")  # what Generate does
    line, _ = api.quoted(values, bob)  # type: ignore[arg-type]
    assert "Over the studio's limits" not in line, line


def test_the_rerun_note_warns_of_the_limits_confirm_rerun_would_be_refused_for(tmp_path):
    """'Rerun exactly' shows the rerun's quote and asks; it now also says the limits the rerun
    would break (here ann's own daily budget), as the form's quote line does, before Confirm."""
    from app.studio.forms import FormValues
    from app.ui.callbacks import Callbacks
    from app.ui.inputs import Extras
    from tests.app.test_batch import offline_studio

    studio = offline_studio(tmp_path)
    values = FormValues(pipeline="t2v_14b", mode="turbo", prompt="a heron",
                        resolution="480p square", seed=5, randomize=False)  # fmt: skip
    prep = studio.prepare(values)
    rid = studio.ledger.create(template="t2v_14b", mode="turbo", params=dict(prep.filled.params),
                               workflow=prep.filled.workflow, quote=prep.quote, gpu="H100 PRO",
                               user="ann")  # fmt: skip
    done = studio.ledger.get(rid).created_at
    studio.ledger.update(rid, state=JobState.COMPLETED, finished_at=done,
                         cost=cost.Actual(billed_s=1, dollars=prep.quote.dollars))  # fmt: skip
    limits = Guardrails(daily_usd=None, user_daily_usd=prep.quote.dollars * 1.5, job_usd=None)
    studio.ops = Gate(limits=limits, ledger=studio.ledger)
    extras = Extras(Callbacks(studio, SimpleNamespace()))  # type: ignore[arg-type]
    note, _ = extras.rerun_ask(SimpleNamespace(username="ann"), rid)  # type: ignore[arg-type]
    assert note.startswith(f"**Rerun job `{rid}` exactly**"), note
    assert "Over the studio's limits** (Confirm rerun would be refused): your daily budget" in note
    studio.ops = Gate(limits=Guardrails(daily_usd=None, user_daily_usd=None), ledger=studio.ledger)
    note, _ = extras.rerun_ask(SimpleNamespace(username="ann"), rid)  # type: ignore[arg-type]
    assert "Over the studio's limits" not in note
