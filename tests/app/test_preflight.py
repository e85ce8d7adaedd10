"""Pre-flight: a filled workflow against an endpoint inventory (built from the recorded ComfyUI
/models answers and the Wan schema), refusals naming each missing file and its folder, the
inventory cache, and the inventory job through the local stack."""

from __future__ import annotations

import json
import time

import pytest

from app.errors import ConfigError, StudioError, user_message
from app.studio.checks.preflight import (
    Inventory,
    InventoryCache,
    InventoryPending,
    InventoryUnavailable,
    Preflight,
    PreflightError,
    PreflightSettings,
    fetch_inventory,
    missing,
    parse_inventory,
    template_gaps,
)
from tests.helpers import RECORDINGS, WAN_SCHEMA
from workflows.catalog import load_catalog
from workflows.fill import fill


def recorded_models() -> dict[str, list[str]]:
    """{folder: files} exactly as the recorded ComfyUI 0.3.64 answered GET /models/{folder}."""
    rec = json.loads((RECORDINGS / "endpoints.json").read_text())
    out = {}
    for event in rec["events"]:
        path = event.get("request", {}).get("path", "")
        if path.startswith("/models/") and event.get("status") == 200:
            out[path.removeprefix("/models/")] = event["json"]
    assert {"diffusion_models", "text_encoders", "vae", "loras"} <= set(out)
    return out


def answer(models=None, drop_nodes=()) -> dict:
    nodes = sorted(set(json.loads(WAN_SCHEMA.read_text())) - set(drop_nodes))
    return {
        "inventory": {
            "models": recorded_models() if models is None else models,
            "nodes": nodes,
            "comfyui_version": "0.3.64",
        }
    }


FULL = parse_inventory(answer(), fetched_at=1000.0)
CATALOG = load_catalog()


def without(folder: str, name: str) -> Inventory:
    models = recorded_models()
    models[folder] = [f for f in models[folder] if f != name]
    assert name not in models[folder]
    return parse_inventory(answer(models), fetched_at=1000.0)


# -- parsing --------------------------------------------------------------------------------------
def test_parse_the_documented_answer():
    assert FULL.comfyui_version == "0.3.64"
    assert "KSamplerAdvanced" in FULL.nodes
    assert "wan_2.1_vae.safetensors" in FULL.models["vae"]
    assert "probe_subdir/probe_nested_lora.safetensors" in FULL.models["loras"]


def test_legacy_folder_names_merge_into_comfyuis_current_ones():
    inv = parse_inventory({"models": {"unet": ["a.safetensors"], "diffusion_models": ["b"]},
                           "nodes": []})  # fmt: skip
    assert inv.models["diffusion_models"] == ("a.safetensors", "b")
    assert "unet" not in inv.models


@pytest.mark.parametrize(
    "bad",
    [None, "text", {"inventory": []}, {"inventory": {"models": {}}},
     {"inventory": {"models": {"vae": "x"}, "nodes": []}}],
)  # fmt: skip
def test_bad_answers_are_unavailable_not_a_crash(bad):
    with pytest.raises(InventoryUnavailable):
        parse_inventory(bad)


# -- comparison -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "mode"),
    [(t.id, m) for t in CATALOG for m in t.modes if m not in t.unavailable_modes],
)
def test_every_catalog_template_passes_on_the_recorded_endpoint(template, mode):
    images = {p: f"{p}.png" for p in ("start_image", "end_image") if p in CATALOG[template].params}
    filled = fill(template, {"prompt": "x", "mode": mode, **images})
    assert not missing(filled.workflow, FULL)
    assert template_gaps(CATALOG[template], mode, FULL) == ()


def test_a_missing_expert_is_named_with_its_folder():
    name = "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
    gap = missing(fill("t2v_14b", {"prompt": "x"}).workflow, without("diffusion_models", name))
    assert [(f.name, f.folder) for f in gap.files] == [(name, "diffusion_models")]
    assert gap.nodes == ()
    assert f"- {name} → models/diffusion_models/" in gap.message()
    assert gap.message().startswith("pre-flight: the endpoint lacks 1 model file")


def test_turbo_needs_the_lightx2v_loras_quality_does_not():
    lora = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
    inv = without("loras", lora)
    turbo = missing(fill("t2v_14b", {"prompt": "x", "mode": "turbo"}).workflow, inv)
    assert [str(f) for f in turbo.files] == [f"{lora} → models/loras/"]
    assert not missing(fill("t2v_14b", {"prompt": "x", "mode": "quality"}).workflow, inv)
    assert [f.name for f in template_gaps(CATALOG["t2v_14b"], "turbo", inv)] == [lora]
    assert template_gaps(CATALOG["t2v_14b"], "quality", inv) == ()


def test_empty_volume_lists_every_file_and_folder_once():
    inv = parse_inventory(answer(models={}), fetched_at=1.0)
    gap = missing(fill("t2v_14b", {"prompt": "x"}).workflow, inv)
    want = {(m.name, m.folder) for m in CATALOG["t2v_14b"].model_files("turbo")}
    assert {(f.name, f.folder) for f in gap.files} == want
    assert len(gap.files) == len(want) == 6


def test_missing_node_classes_are_listed():
    inv = parse_inventory(answer(drop_nodes=("CreateVideo", "SaveVideo")), fetched_at=1.0)
    gap = missing(fill("t2v_14b", {"prompt": "x"}).workflow, inv)
    assert set(gap.nodes) == {"CreateVideo", "SaveVideo"} and gap.files == ()
    assert "lacks node classes" in gap.message() and "SaveVideo" in gap.message()


# -- cache ----------------------------------------------------------------------------------------
class Fetcher:
    """A stand-in for the inventory job: answers from a list, records what it was asked."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[str | None] = []

    def __call__(self, job_id=None, on_sent=None, timeout_s=300.0) -> Inventory:
        self.calls.append(job_id)
        if job_id is None and on_sent:
            on_sent(f"job-{len(self.calls)}")
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


class Clock:
    def __init__(self, t: float = 10_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_cache_is_reused_while_fresh_and_refetched_when_stale(tmp_path):
    clock, fetch = Clock(), Fetcher(FULL, FULL)
    cache = InventoryCache(
        tmp_path / "inv.json", fetch, max_age_s=600, endpoint_key="ep", clock=clock
    )
    first = cache.get()
    assert first.fetched_at == clock.t and fetch.calls == [None]
    clock.t += 600
    assert cache.get().fetched_at == first.fetched_at and len(fetch.calls) == 1
    stored = json.loads((tmp_path / "inv.json").read_text())
    assert stored["fetched_at"] == first.fetched_at and stored["endpoint"] == "ep"
    clock.t += 1
    assert cache.get().fetched_at == clock.t and len(fetch.calls) == 2
    # another process (a restarted app) reads the same file
    again = InventoryCache(tmp_path / "inv.json", Fetcher(), 600, "ep", clock)
    assert again.get().nodes == FULL.nodes


def test_the_cached_file_is_parsed_once_per_version_and_its_schema_built_once(tmp_path):
    """Every submit reads the cache: the same file gives the same Inventory (not parsed
    again), a new fetch or another process's write a new one."""
    clock, fetch = Clock(), Fetcher(FULL, FULL)
    cache = InventoryCache(tmp_path / "inv.json", fetch, 600, "ep", clock)
    first = cache.get()
    assert cache.cached() is cache.cached() and cache.cached().schema is cache.cached().schema
    clock.t += 601
    fresh = cache.get()
    assert cache.cached() is not first and cache.cached().fetched_at == fresh.fetched_at
    data = json.loads((tmp_path / "inv.json").read_text())
    (tmp_path / "inv.json").write_text(json.dumps({**data, "fetched_at": 1.0}))  # another writer
    assert cache.cached().fetched_at == 1.0


def test_cache_of_another_endpoint_is_ignored(tmp_path):
    InventoryCache(tmp_path / "inv.json", Fetcher(FULL), 600, "ep-a", Clock()).get()
    other = Fetcher(FULL)
    InventoryCache(tmp_path / "inv.json", other, 600, "ep-b", Clock()).get()
    assert other.calls == [None]


def test_a_slow_inventory_job_is_polled_again_not_resent(tmp_path):
    fetch = Fetcher(InventoryPending("still IN_QUEUE"), FULL)
    cache = InventoryCache(tmp_path / "inv.json", fetch, 600, "ep", Clock())
    with pytest.raises(InventoryPending):
        cache.get()
    assert cache.get().nodes == FULL.nodes
    assert fetch.calls == [None, "job-1"]
    assert json.loads((tmp_path / "inv.json").read_text())["pending_job"] is None


def test_a_failed_inventory_job_is_forgotten_and_resent(tmp_path):
    fetch = Fetcher(InventoryUnavailable("ended FAILED: unknown key"), FULL)
    cache = InventoryCache(tmp_path / "inv.json", fetch, 600, "ep", Clock())
    with pytest.raises(InventoryUnavailable):
        cache.get()
    cache.get()
    assert fetch.calls == [None, None]


# -- the pre-flight verdict -----------------------------------------------------------------------
WF = fill("t2v_14b", {"prompt": "x"}).workflow
VAE = "wan_2.1_vae.safetensors"


def test_refusal_names_the_file_and_folder_as_the_operator_sees_it(tmp_path):
    clock = Clock()
    cache = InventoryCache(tmp_path / "i.json", Fetcher(without("vae", VAE)), 3600, "", clock)
    with pytest.raises(PreflightError) as info:
        Preflight(cache, PreflightSettings()).check(WF)
    assert isinstance(info.value, StudioError)
    text = user_message(info.value)
    assert f"{VAE} → models/vae/" in text and "ComfyUI 0.3.64" in text


def test_an_old_refusal_is_confirmed_with_a_fresh_inventory(tmp_path):
    clock = Clock()
    fetch = Fetcher(without("vae", VAE), FULL)
    cache = InventoryCache(tmp_path / "i.json", fetch, 3600, "", clock)
    pre = Preflight(cache, PreflightSettings(recheck_s=60))
    with pytest.raises(PreflightError):
        pre.check(WF)  # fresh: refused at once
    clock.t += 61  # the operator uploaded the VAE meanwhile
    assert pre.check(WF).ok and len(fetch.calls) == 2


def test_modes_when_the_inventory_cannot_be_had(tmp_path):
    def cache():
        return InventoryCache(tmp_path / "i.json", Fetcher(InventoryUnavailable("old worker")))

    verdict = Preflight(cache(), PreflightSettings(mode="best-effort")).check(WF)
    assert verdict.ok and "not checked against the endpoint's models: old worker" in verdict.note
    with pytest.raises(InventoryUnavailable, match="WANPOD_PREFLIGHT=required"):
        Preflight(cache(), PreflightSettings(mode="required")).check(WF)
    off = Preflight(cache(), PreflightSettings(mode="off")).check(WF)
    assert off.ok and "off" in off.note


def test_settings_from_env():
    s = PreflightSettings.from_env(
        {"WANPOD_PREFLIGHT": "Required", "WANPOD_INVENTORY_MAX_AGE_S": "60"}
    )
    assert (s.mode, s.max_age_s, s.timeout_s) == ("required", 60.0, 300.0)
    with pytest.raises(ConfigError, match=r"WANPOD_PREFLIGHT='maybe'.*best-effort"):
        PreflightSettings.from_env({"WANPOD_PREFLIGHT": "maybe"})
    with pytest.raises(ConfigError, match="WANPOD_INVENTORY_TIMEOUT_S"):
        PreflightSettings.from_env({"WANPOD_INVENTORY_TIMEOUT_S": "1"})
    # blank (an empty row of a deploy's settings) is the default, as for every other variable
    assert PreflightSettings.from_env({"WANPOD_PREFLIGHT": "  "}).mode == "best-effort"


def test_an_endpoint_id_refusal_names_every_character_it_takes():
    from app.settings import Settings

    env = {"RUNPOD_API_KEY": "rpa_KEY", "RUNPOD_ENDPOINT_ID": "ab c"}
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == (
        "RUNPOD_ENDPOINT_ID='ab c' is not an endpoint id; allowed: letters, digits, - and _"
    )
    assert Settings.from_env({**env, "RUNPOD_ENDPOINT_ID": "ab-c_1"})  # as said


# -- the inventory job through the local stack -------------------------------------------------
@pytest.mark.slow
def test_inventory_job_through_the_local_stack_then_preflight(stack, tmp_path):
    from app.endpoint import EndpointClient

    client = EndpointClient(stack.base_url, stack.api_key)
    t0 = time.time()
    inv = fetch_inventory(client, timeout_s=60, poll_s=0.1)
    assert inv.fetched_at >= t0
    assert {"UNETLoader", "KSamplerAdvanced", "SaveVideo"} <= inv.nodes
    for m in CATALOG["t2v_14b"].model_files("turbo"):
        assert m.name in inv.models[m.folder], m
    cache = InventoryCache(
        tmp_path / "inv.json",
        lambda **kw: fetch_inventory(client, poll_s=0.1, **kw),
        endpoint_key=stack.base_url,
    )
    pre = Preflight(cache, PreflightSettings(mode="required"))
    assert pre.check(WF).ok
    wf = json.loads(json.dumps(WF))
    wf["1"]["inputs"]["unet_name"] = "not_on_this_volume.safetensors"
    with pytest.raises(PreflightError) as info:
        pre.check(wf)
    assert "not_on_this_volume.safetensors → models/diffusion_models/" in str(info.value)
    assert stack.api_key not in str(info.value)


@pytest.mark.slow
def test_preflight_names_a_missing_custom_node_before_a_paid_run(stack, tmp_path):
    """A workflow saving through VideoHelperSuite's VHS_VideoCombine on an endpoint built without
    that pack: the inventory's node classes lack it, so the studio refuses before sending it."""
    from app.endpoint import EndpointClient

    client = EndpointClient(stack.base_url, stack.api_key)
    cache = InventoryCache(
        tmp_path / "inv.json",
        lambda **kw: fetch_inventory(client, poll_s=0.1, **kw),
        endpoint_key=stack.base_url,
    )
    pre = Preflight(cache, PreflightSettings(mode="required"))
    wf = json.loads(json.dumps(WF))
    decode = next(k for k, v in wf.items() if v["class_type"] == "VAEDecode")
    for k in [k for k, v in wf.items() if v["class_type"] in ("CreateVideo", "SaveVideo")]:
        del wf[k]
    wf["90"] = {
        "class_type": "VHS_VideoCombine",
        "inputs": {"images": [decode, 0], "frame_rate": 16, "loop_count": 0,
                   "filename_prefix": "wanpod", "format": "video/h264-mp4",
                   "pingpong": False, "save_output": True},
    }  # fmt: skip
    with pytest.raises(PreflightError) as info:
        pre.check(wf)
    text = str(info.value)
    assert "lacks node classes" in text and "VHS_VideoCombine" in text
    assert 'CUSTOM_NODES="<node packs>"' in text
    assert "model file" not in text  # the Wan files are all there: only the node is named


def test_a_submit_does_not_wait_past_its_bound_for_another_threads_fetch(tmp_path):
    """The warm-up's inventory job waits for a cold worker; a best-effort submit meanwhile
    goes with a note after its own wait, instead of queueing behind the whole fetch."""
    import threading

    release, fetching = threading.Event(), threading.Event()

    def slow_fetch(**_kw):
        fetching.set()
        release.wait(30)  # the cold start; set at the end of the test (or after 30 s)
        return FULL

    cache = InventoryCache(tmp_path / "i.json", slow_fetch, 3600, "", Clock())
    warm = threading.Thread(target=cache.get, daemon=True)
    warm.start()
    assert fetching.wait(10)
    pre = Preflight(cache, PreflightSettings(best_effort_wait_s=0.1))
    verdict = pre.check(WF)
    still_fetching = not release.is_set()
    release.set()
    warm.join(10)
    assert still_fetching and verdict.ok
    assert "not checked against the endpoint's models" in verdict.note
    assert "still being fetched" in verdict.note
    assert pre.check(WF).inventory is not None  # the warm-up's answer serves the next one
