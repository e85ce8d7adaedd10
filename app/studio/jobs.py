"""The studio's job service: form values -> filled workflow -> quote -> ledger row -> /run.

`Studio` is what the UI callbacks call; it holds the injected services (settings, pipeline forms,
fill function, endpoint client, ledger, tracker, prices) and has no Gradio in it.
- `quote(values)`: fill (validation included) + the cost model, calibrated on this endpoint's
  finished jobs.
- `submit(values, user)`: the same, then the operator checks (`ops.before_run`: limits, budgets,
  pre-flight; refusals raise before anything is written or sent), images prepared, a ledger row
  written BEFORE /run (with `policy.executionTimeout` from the quote), the RunPod
  job id stored the moment /run answers, and the tracker told to follow it. Returns the row id.
- `rerun(rid, caller)`: the same filled workflow and seed as a new job (limits and pre-flight
  apply; input images are kept per job in the data folder, and in an S3 result store for the
  other replicas, `kept_input`); `reuse(rid, caller)`: a
  past job's form values. Each row keeps its recipe: template, template version (hash), seed,
  and the worker-reported ComfyUI version.
- `cancel(rid, caller)`: /cancel for a live job; the tracker records CANCELLED and the partial
  cost.
- `view(rid, caller)`: what a page shows for a row (status line, fraction, video path, details).
Every job lookup takes the caller (app/studio/owners.py) and goes through `row(rid, caller)`:
under APP_AUTH a user reaches only their own jobs (an admin every job); another user's job is
answered like an unknown one.
Every refusal is a StudioError naming the field (ParamError from workflows becomes InputError).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.endpoint import RUN_LIMIT, EndpointClient
from app.endpoint.states import JobState
from app.errors import (
    MB,
    DiskFull,
    InputError,
    JobMayExist,
    SegmentSent,
    StudioError,
    SubmitError,
    user_message,
)
from app.settings import Settings
from app.studio import cost, disk, webhooks
from app.studio.chain_history import is_chain
from app.studio.chain_store import ChainStore
from app.studio.checks.gate import Gate
from app.studio.forms import FILE_FIELDS, LABELS, FormValues, PipelineForm, to_params
from app.studio.history import no_video
from app.studio.inputs import ImageFit, JobImages, image_fits, job_images
from app.studio.learning import Learning
from app.studio.ledger import JobRow, Ledger
from app.studio.offers import Offers, offers
from app.studio.owners import Caller, result_holder
from app.studio.progress import ProgressView, Samplers, describe, samplers
from app.studio.records import details, template_version
from app.studio.reuse import asked
from app.studio.shown import Shown, check_shown
from app.studio.store import LocalStore, ResultStore, error_code
from app.studio.tracker import Tracker

log = logging.getLogger("wanpod.jobs")
MAY_EXIST = (  # a LOST row's words when /run's answer was lost (app/studio/reconcile.py)
    "Its quote counts against today's budget; if the endpoint's requests in the RunPod console "
    "show the job, reconcile this row with its id."
)


@dataclass(frozen=True)
class Prepared:
    form: PipelineForm
    template_id: str
    params: dict[str, Any]
    filled: Any  # workflows.fill.FilledWorkflow
    request: cost.CostRequest
    quote: cost.Quote


@dataclass(frozen=True)
class JobView:
    rid: str
    state: JobState
    progress: ProgressView
    video: str | None
    details: str
    final: bool


def too_large(size: int, prep: Prepared, values: FormValues, images: JobImages) -> InputError:
    """/run's body is over RunPod's limit: the refusal names the field that makes most of it
    (an image, as sent: fitted and re-encoded; a prompt; a bring-your-own workflow file)."""
    parts = {LABELS[param]: len(img.b64) for param, img in images.files.items()}
    texts = {"prompt": values.prompt, "negative_prompt": values.negative_prompt or ""}
    parts |= {LABELS[name]: len(json.dumps(text)) for name, text in texts.items()}
    if prep.form.byo:
        parts["workflow file"] = len(json.dumps(prep.filled.workflow)) - sum(
            len(json.dumps(t)) for t in texts.values()
        )
    field = max(parts, key=lambda k: parts[k])
    return InputError(
        field,
        f"the request is {size / MB:.1f} MB, {parts[field] / MB:.1f} MB of it this field's; "
        f"RunPod's /run takes at most {RUN_LIMIT // MB} MB",
    )


def run_input(prep: Prepared, values: FormValues, images: JobImages) -> dict[str, Any]:
    """/run's input for the job (its workflow, its images as sent); the InputError of
    `too_large` when it is over RunPod's limit."""
    job_input: dict[str, Any] = {"workflow": prep.filled.workflow}
    uploads = images.uploads(getattr(prep.filled, "images", {}) or {})
    if uploads:
        job_input["images"] = uploads
    size = len(json.dumps(job_input))
    if size > RUN_LIMIT:
        raise too_large(size, prep, values, images)
    return job_input


class Studio:
    def __init__(
        self,
        *,
        settings: Settings,
        forms: Mapping[str, PipelineForm],
        fill: Callable[[str, Mapping[str, object]], Any],
        endpoint: EndpointClient,
        ledger: Ledger,
        tracker: Tracker,
        prices: cost.Prices,
        byo_fill: Callable[[Any, Mapping[str, object]], Any] | None = None,
        ops: Gate | None = None,
    ) -> None:
        self.settings = settings
        self.forms = forms
        self.fill = fill
        self.byo_fill = byo_fill
        self.endpoint = endpoint
        self.ledger = ledger
        self.tracker = tracker
        self.prices = prices
        self.learning = Learning(ledger)  # the quotes' calibration from finished jobs
        self.ops = ops  # limits, budgets, pre-flight before /run (None: no checks)
        self.disk = disk.Probe(settings.data_dir)  # can the data folder take a new job?
        self._results = Path(os.path.realpath(Path(settings.data_dir) / "results"))
        self._chains = ChainStore(ledger)  # whose a chain's stored files are (`may_read`)
        self._samplers = functools.lru_cache(maxsize=1024)(self._read_samplers)

    # -- quote -----------------------------------------------------------------------------
    def calibration(self) -> cost.Calibration:
        return self.learning.calibration()

    def forget_calibration(self, _rid: str = "") -> None:
        self.learning.forget()

    def images(self, values: FormValues) -> list[ImageFit]:
        """The job's images checked before Generate (missing, too small) and what fitting does."""
        form = self.form(values.pipeline)
        return image_fits(form, values, self._size(form, values))

    def _size(self, form: PipelineForm, values: FormValues) -> tuple[int, int]:
        preset = form.preset(values.resolution)
        return (preset.width, preset.height) if preset else (832, 480)

    def form(self, pipeline: str) -> PipelineForm:
        """The form of `pipeline`, or an InputError naming the offered ones."""
        form = self.forms.get(pipeline)
        if form is None:
            raise InputError(
                "pipeline", f"{pipeline!r} is not offered; allowed: {', '.join(self.forms)}"
            )
        return form

    def prepare(self, values: FormValues, images: Mapping[str, str] | None = None) -> Prepared:
        """Fill + quote. `images`: param -> upload name; placeholders are used for quoting."""
        form = self.form(values.pipeline)
        if images is None:
            images = {}
            start = values.start_image or values.start_image_url
            if form.needs_start and (start or not form.start_optional):
                images["start_image"] = "wanpod_start.png"
            if form.needs_end:
                images["end_image"] = "wanpod_end.png"
        params = to_params(form, values, images)
        try:
            if form.byo:
                if self.byo_fill is None:
                    raise InputError("pipeline", "bring-your-own workflows are not available")
                filled = self.byo_fill(values.workflow_file, params)
            else:
                filled = self.fill(form.template_id, params)
        except StudioError:
            raise
        except ValueError as exc:  # workflows' ParamError is a ValueError naming the parameter
            field = getattr(exc, "param", None) or "form"
            text = str(exc)
            label = form.label_of(str(field))
            if text.startswith(f"{field}:"):
                text = text[len(field) + 1 :].strip()
            raise InputError(label, text) from None
        req = cost.request_from_workflow(form.template_id, values.mode, filled.workflow)
        q = cost.quote(req, self.settings.gpu_type, self.prices, self.calibration())
        return Prepared(form, form.template_id, params, filled, req, q)

    # -- submit ------------------------------------------------------------------------------
    def submit(
        self,
        values: FormValues,
        user: str | None = None,
        chain: Mapping[str, Any] | None = None,
        shown: Shown | None = None,
        keep: Shown | None = None,
    ) -> str:
        """`chain`: the chain segment this job is (app/studio/chains.py), kept on its row;
        `shown`: what the page's quote line showed (the job sent must be that one); `keep`:
        a chain segment's price when the chain was quoted, kept when it prices this job (the
        same cost inputs), else the job is quoted now."""
        self.check_files(values, self.caller(user))
        form = self.form(values.pipeline)
        images = job_images(form, values, self._size(form, values), uuid.uuid4().hex[:10])
        prep = self.prepare(values, images.names)
        check_shown(shown, prep.request, prep.quote)
        if shown is not None and shown.quote is not None:  # the job the line priced, at the
            prep = dataclasses.replace(prep, quote=shown.quote)  # price it showed
        elif keep is not None and keep.quote is not None and keep.request == prep.request:
            prep = dataclasses.replace(prep, quote=keep.quote)
        job_input = run_input(prep, values, images)
        names = [u["name"] for u in job_input.get("images", [])]
        clearance = self.ops.before_run(prep, user, names) if self.ops is not None else None
        resolved = dict(getattr(prep.filled, "params", {}) or prep.params)
        recipe = {
            "template": prep.template_id,
            "template_version": template_version(prep.template_id, values.workflow_file),
            "seed": resolved.get("seed"),
        }
        params = {**resolved, "prompt": values.prompt}
        form = asked(values, resolved.get("seed"))
        args = (prep, values.mode, params, job_input, clearance, user, recipe, form)
        return self._send(*args, chain=chain)

    def sendable(self, values: FormValues, user: str | None = None, frame: bool = False) -> None:
        """Refuse, writing and sending nothing, what `submit` would refuse of the job before its
        row: files the caller may not read, a missing or unusable image (in the quote line's
        words) and a /run body over RUN_LIMIT (no pre-flight, no budget: a chain checks those
        whole). `frame`: a chain segment whose start image is a frame made when it is sent
        (not counted here)."""
        self.check_files(values, self.caller(user))
        form = self.form(values.pipeline)
        images = JobImages({}, {})
        if not frame:
            self.images(values)
            images = job_images(form, values, self._size(form, values), uuid.uuid4().hex[:10])
        run_input(self.prepare(values, images.names or None), values, images)

    def _send(
        self, prep, mode, params, job_input, clearance, user, recipe, form, chain=None
    ) -> str:
        """Ledger row first (inputs kept for reruns), then /run; returns the row id. Nothing is
        written or sent while the data folder cannot be written (disk.Probe)."""
        args = (prep, mode, params, job_input, clearance, user, recipe, form, chain)
        try:
            self.disk.refuse_if_full()
            return self._write_and_send(*args)
        except Exception as exc:
            if not isinstance(exc, DiskFull) and disk.full(exc):
                self.disk.forget()
                why = getattr(exc, "strerror", None) or str(exc)
                raise DiskFull(disk.message(self.settings.data_dir, why)) from None
            raise

    def _write_and_send(
        self, prep, mode, params, job_input, clearance, user, recipe, form, chain
    ) -> str:
        lease = self.tracker.lease()  # held by this replica while /run is under way

        def admit() -> str:  # budget check and row: one step (no double spend)
            if chain is not None and self.ledger.has_segment(chain["id"], chain["index"]):
                raise SegmentSent(f"segment {chain['index'] + 1} of {chain['id']} was sent already")
            if self.ops is not None:
                self.ops.hold(prep, user)
            return self.ledger.create(
                template=prep.template_id,
                mode=mode,
                params=params,
                workflow=prep.filled.workflow,
                quote=prep.quote,
                gpu=self.settings.gpu_type,
                user=user,
                recipe=recipe,
                form=form,
                chain=chain,
                **lease,
            )

        rid = self.ledger.atomic(admit)
        try:
            kept = self._keep_inputs(rid, job_input.get("images", []))
            hook = self._webhook(rid)  # None unless WANPOD_PUBLIC_URL is set
        except Exception as exc:  # nothing sent: the row ends now, its hold with it
            with contextlib.suppress(Exception):  # the ledger's disk may be what failed
                error = f"not sent: {user_message(exc, self.settings.secret_values())}"
                self.ledger.update(rid, state=JobState.FAILED, error=error, finished_at=time.time())
            raise
        try:
            with self.tracker.submitting(rid):  # its lease renewed while /run is under way
                if clearance is not None:
                    ref = self.endpoint.run(job_input, policy=clearance.policy, **hook)
                else:
                    ref = self.endpoint.run(job_input, **hook)
        except JobMayExist as exc:  # it may run and cost: LOST, its quote counted, reconcilable
            msg = user_message(exc, self.settings.secret_values())
            lost = {"state": JobState.LOST, "error": f"{msg} {MAY_EXIST}", "lease_owner": None}
            self.ledger.update(rid, finished_at=time.time(), lease_until=None, **lost)
            log.warning(  # for the operator's reconcile: the row, and why
                "job %s: LOST: /run reached RunPod but its answer was lost (%s); if the "
                "endpoint's requests show the job, reconcile this row with its id",
                rid,
                type(exc).__name__,
            )
            raise SubmitError(f"the job may have reached the endpoint: {msg}", rid=rid) from None
        except Exception as exc:
            msg = user_message(exc, self.settings.secret_values())
            self.ledger.update(rid, state=JobState.FAILED, error=msg, finished_at=time.time())
            raise SubmitError(f"the endpoint did not take the job: {msg}") from None
        leased_at = time.monotonic()  # the lease is renewed with the job id (a slow /run's)
        try:
            recorded = self.ledger.sent(rid, ref.id, ref.state, **lease)
        except Exception as exc:  # the ledger away (PostgreSQL restarting, its disk full): the
            log.warning(  # job runs on RunPod all the same; the tracker records its id later
                "job %s: /run answered %s, which the ledger could not record (%s): recorded "
                "once it can be",
                rid,
                ref.id,
                type(exc).__name__,
            )
            self.tracker.sent_later(rid, ref.id, ref.state)
            self.share_inputs(rid, kept)
            return rid
        if not recorded:
            log.warning("job %s: /run answered %s, but the row has a job id already", rid, ref.id)
        self.tracker.watch(rid, leased_at=leased_at)
        if clearance is not None and clearance.note:
            log.info("job %s: %s", rid, clearance.note)
        self.share_inputs(rid, kept)
        return rid

    def _keep_inputs(self, rid: str, uploads: list[dict[str, str]]) -> list[Path]:
        """The job's input images (base64, as sent) written to this replica's inputs folder."""
        keep = self.inputs_dir(rid)
        paths = []
        for upload in uploads:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / upload["name"]).write_text(upload["image"])
            paths.append(keep / upload["name"])
        return paths

    def share_inputs(self, rid: str, paths: list[Path]) -> None:
        """The kept inputs put in the result store for the other replicas (S3; the local store
        keeps none) once the job is sent and followed, so a slow store delays no /run (only the
        submit's answer, and only a job with images). A store that fails here does not undo a
        job already sent: its inputs stay this replica's alone (another says they were not
        kept), and the log says so without the store's address."""
        for path in paths:
            try:
                self.store.keep_input(rid, path)
            except Exception as exc:
                code = error_code(exc)
                log.warning(
                    "%s: its input %s could not be put in the result store (%s %s): only "
                    "this replica can rerun it",
                    rid, path.name, type(exc).__name__, code,
                )  # fmt: skip

    def _webhook(self, rid: str) -> dict[str, str]:
        """`run()`'s webhook argument for row `rid`, its secret's digest kept in the row."""
        public = self.settings.shared.public_url
        if not public:
            return {}
        token = webhooks.new_token()
        self.ledger.update(rid, webhook_digest=webhooks.digest(token))
        return {"webhook": webhooks.webhook_url(public, rid, token)}

    # -- history: rerun exactly, reuse settings ------------------------------------------------
    def rerun(self, rid: str, caller: Caller) -> str:
        """The same filled workflow (same seed) as a new job and ledger row, sent as the caller's
        own; limits apply."""
        row = self.row(rid, caller)
        user = caller.user
        job_input: dict[str, Any] = {"workflow": row.workflow}
        names = [str(n["inputs"]["image"]) for n in row.workflow.values()
                 if n.get("class_type") == "LoadImage"]  # fmt: skip
        if names:
            kept = {n: self.kept_input(row.id, n) for n in names}
            missing = [n for n, path in kept.items() if path is None]
            if missing:
                raise InputError(
                    "job", f"its input images were not kept ({', '.join(missing)}); use Reuse "
                    "settings and upload them again",
                )  # fmt: skip
            job_input["images"] = [{"name": n, "image": kept[n].read_text()} for n in names]
        prep = self._rerun_prepared(row)
        filled = prep.filled
        clearance = self.ops.before_run(prep, user, names) if self.ops is not None else None
        recipe = {**(row.recipe or {}), "rerun_of": row.id}
        recipe.pop("comfyui_version", None)
        args = (prep, row.mode, filled.params, job_input, clearance, user, recipe, row.form)
        return self._send(*args)

    def rerun_quote(self, row: JobRow) -> tuple[cost.CostRequest, cost.Quote]:
        """What rerunning a job would cost: its own workflow, quoted now."""
        req = cost.request_from_workflow(row.template, row.mode, row.workflow)
        return req, cost.quote(req, self.settings.gpu_type, self.prices, self.calibration())

    def _rerun_prepared(self, row: JobRow) -> Prepared:
        """A rerun of `row` as the limits see it: its own workflow and params, quoted now."""
        req, q = self.rerun_quote(row)
        filled = _Filled(row.workflow, dict(row.params or {}))
        return Prepared(self.forms.get(row.template), row.template, filled.params, filled, req, q)

    def rerun_refusals(self, row: JobRow, user: str | None) -> list[Any]:
        """The limits a rerun of `row` by `user` would break now (what Confirm rerun would be
        refused for): said with its quote, before the confirm."""
        if self.ops is None:
            return []
        return list(self.ops.refusals(self._rerun_prepared(row), user))

    def offers(self) -> Offers:
        """The LoRAs, upscale models and smooth motion the endpoint offers, from its last
        inventory (never waits for one: empty and `known` False until the first is had)."""
        pre = self.ops.preflight if self.ops is not None else None
        return offers(pre.cache.cached() if pre is not None else None)

    def refresh_offers(self) -> Offers:
        """A fresh inventory (waits for the inventory job, at most pre-flight's timeout)."""
        pre = self.ops.preflight if self.ops is not None else None
        if pre is not None:
            pre.cache.get(force=True, timeout_s=pre.settings.timeout_s)
        return self.offers()

    def reuse(self, rid: str, caller: Caller) -> FormValues:
        """The form values of a past job as the user set them (its seed fixed, not randomized)."""
        row = self.row(rid, caller)
        if row.form is None:
            raise InputError("job", f"{rid!r} was not sent from the form; it has no form values")
        return row.form

    def _read_samplers(self, rid: str) -> Samplers:
        return samplers(self.ledger.workflow(rid))

    # -- rows --------------------------------------------------------------------------------
    def caller(self, username: str | None) -> Caller:
        """The caller for a signed-in user name (Gradio's `request.username`)."""
        return Caller.of(username, self.settings.access)

    def may_read(self, raw: str, caller: Caller) -> bool:
        """Whether `caller` may read the file at `raw` through the studio (fetch it, or send it
        as a job's input): a file of a job's or chain's folder under the results folder only
        when the caller may see that job or chain; anything else is Gradio's business (its own
        allowed and blocked paths)."""
        holder = result_holder(self._results, raw)
        if not holder:
            return True
        if is_chain(holder):
            chain = self._chains.get(holder)
            return chain is not None and caller.sees(chain.user)
        try:
            self.row(holder, caller, workflow=False)
        except InputError:
            return False
        return True

    def check_files(self, values: FormValues, caller: Caller) -> None:
        """Refuse a form whose file fields name a stored file the caller may not read (another
        user's kept image, sent back by path through the API), in the same words whether that
        file exists or not."""
        for name in FILE_FIELDS:
            path = getattr(values, name)
            if path and not self.may_read(str(path), caller):
                raise InputError(
                    LABELS[name], f"{str(path)!r} is not a file of yours; upload the file instead"
                )

    def row(self, rid: str | None, caller: Caller, workflow: bool = True) -> JobRow:
        """The ledger row `rid` when `caller` may see it, else an InputError saying it is not a
        job of this studio (the same words for another user's job as for an unknown one); an
        empty id is said to be empty."""
        rid = (rid or "").strip()
        if not rid:
            raise InputError("job", "is empty; give the id of a job of this studio (wp-...)")
        row = self.ledger.get(rid, workflow=workflow)
        if row is None or not caller.sees(row.user):
            raise InputError("job", f"{rid!r} is not a job of this studio")
        return row

    def inputs_dir(self, rid: str) -> Path:
        """Where a job's input images are kept (base64, as sent) for reruns and reuse."""
        return self.settings.data_dir / "inputs" / rid

    @property
    def store(self) -> ResultStore:
        """Where finished jobs' files (and kept inputs) live (app/studio/store.py)."""
        store = getattr(self.tracker, "store", None)
        return store if store is not None else LocalStore(self._results)

    def kept_input(self, holder: str, name: str, folder: Path | None = None) -> Path | None:
        """The one rule for where a job's (or a storyboard's) kept input `name` is: this
        replica's copy in `folder` (the job's inputs folder by default), else the result
        store's (another replica's submit), fetched into `folder` once; None when not kept.
        No access check: the caller looked the job or chain up for its user first."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None  # a name from a row, never a path out of the folder
        path = (folder or self.inputs_dir(holder)) / name
        return path if path.is_file() else self.store.fetch_input(holder, name, path)

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, rid: str, caller: Caller) -> str:
        """Ask RunPod to cancel a queued or running job; the tracker records the end (CANCELLED,
        with the billed seconds so far). Returns a line for the operator."""
        row = self.row(rid, caller)
        if row.final:
            return f"Job {rid} already ended {row.state}."
        if not row.job_id:
            raise SubmitError("the job has no RunPod id yet (still submitting); try again")
        try:
            self.endpoint.cancel(row.job_id)
        except Exception as exc:
            msg = user_message(exc, self.settings.secret_values())
            raise SubmitError(f"cancelling failed: {msg}") from None
        self.tracker.watch(rid)
        return f"Cancel sent for job {rid}; RunPod stops it and the worker interrupts ComfyUI."

    # -- view --------------------------------------------------------------------------------
    def view(self, rid: str, caller: Caller) -> JobView | None:
        """What a page shows for `rid`, read at every update: the row without its workflow, and
        the workflow's samplers read once per job. None: no such job of the caller's."""
        try:
            row = self.row(rid, caller, workflow=False)
        except InputError:
            return None
        start = row.submitted_at or row.created_at
        end = row.finished_at or time.time()
        quote_s = row.quote.execution_s if row.quote else None
        plan = self._samplers(rid)
        pv = describe(row.state, row.progress, end - start, quote_s, plan, row.error)
        if row.final and row.state is not JobState.COMPLETED and row.cost:  # what it still cost
            head = f"{pv.head} · billed {row.cost.billed_s} s = ${row.cost.dollars:.4f}"
            pv = dataclasses.replace(pv, head=head)
        note = self.tracker.note(rid) if self.tracker is not None else None
        if note and not row.final:  # e.g. disk full: the ledger may not say it
            pv = dataclasses.replace(pv, head=note)
        stored = (
            self.tracker.store.local(row.result_path) if row.state is JobState.COMPLETED else None
        )
        if row.state is JobState.COMPLETED and stored is None:  # not "Done" with nothing
            pv = dataclasses.replace(pv, head=f"{pv.head} · no video to play: {no_video(row)}")
        video = str(stored) if stored else None
        return JobView(rid, row.state, pv, video, details(row), row.final)


@dataclass(frozen=True)
class _Filled:
    workflow: dict[str, Any]
    params: dict[str, Any]
