"""LoRA pairing over real-world Wan 2.2 file names, and the checks of a job's LoRA stack.

Every name in REAL_PAIRS / REAL_SINGLES / REAL_HALVES is spelled as published (the source is in
the comment); a few SYNTHETIC cases probe the rules where no public name was at hand."""

from __future__ import annotations

import pytest

from workflows.errors import ParamError
from workflows.loras import (
    EXPERTS_14B,
    MAX_STACK,
    ONE_MODEL,
    LoraUse,
    pair_loras,
    parse_loras,
)

# (high file, low file, label the studio shows)
REAL_PAIRS = [
    # Comfy-Org/Wan_2.2_ComfyUI_Repackaged (the official templates' 4-step LoRAs)
    (
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors",
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1",
    ),
    (
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1",
    ),
    # lightx2v/Wan2.2-Lightning: one folder per pair, the expert in the file name
    (
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/high_noise_model.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/low_noise_model.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/model",
    ),
    # ... and the same renamed _HN/_LN by a download script
    (
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1_HN.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1_LN.safetensors",
        "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1",
    ),
    # Kijai/WanVideo_comfy LoRAs/Wan22-Lightning (HIGH/LOW, nested as the inventory lists them)
    (
        "Wan22-Lightning/Wan2.2-Lightning_T2V-v1.1-A14B-4steps-lora_HIGH_fp16.safetensors",
        "Wan22-Lightning/Wan2.2-Lightning_T2V-v1.1-A14B-4steps-lora_LOW_fp16.safetensors",
        "Wan22-Lightning/Wan2.2-Lightning_T2V-v1.1-A14B-4steps-lora_fp16",
    ),
    # Kijai: the halves differ in rank (128 vs 64): paired by the looser match, with a note
    (
        "Wan22_A14B_T2V_HIGH_Lightning_4steps_lora_250928_rank128_fp16.safetensors",
        "Wan22_A14B_T2V_LOW_Lightning_4steps_lora_250928_rank64_fp16.safetensors",
        "Wan22_A14B_T2V_Lightning_4steps_lora_250928_rank128_fp16",
    ),
    # alibaba-pai/Wan2.2-Fun-Reward-LoRAs
    (
        "Wan2.2-Fun-A14B-InP-high-noise-HPS2.1.safetensors",
        "Wan2.2-Fun-A14B-InP-low-noise-HPS2.1.safetensors",
        "Wan2.2-Fun-A14B-InP-HPS2.1",
    ),
    # NikolaSigmoid/wan2.2-i2v-loras-magical-morph (highnoise/lownoise)
    (
        "wan2.2_i2v_magical_morph_highnoise.safetensors",
        "wan2.2_i2v_magical_morph_lownoise.safetensors",
        "wan2.2_i2v_magical_morph",
    ),
    # civitai downloads into a sub-folder (HighNoise/LowNoise)
    (
        "WAN/WAN2.2-FrenchKiss_HighNoise.safetensors",
        "WAN/WAN2.2-FrenchKiss_LowNoise.safetensors",
        "WAN/WAN2.2-FrenchKiss",
    ),
    # camel case without separators
    ("CassHamadaWan2.2HighNoise.safetensors", "CassHamadaWan2.2LowNoise.safetensors", None),
    ("BounceHighWan2_2.safetensors", "BounceLowWan2_2.safetensors", "BounceWan2_2"),
    # epochs differ between the halves (looser match)
    ("wriggling_i2v_high_e010.safetensors", "wriggling_i2v_low_e020.safetensors", None),
    # the version spelled differently (v.1.0 / v1.0)
    ("wan2.2_highnoise_cshot_v.1.0.safetensors", "wan2.2_lownoise_cshot_v1.0.safetensors", None),
    # spaces, brackets and a browser's " (1)" download suffix
    (
        "Wan2.2 - I2V - King Machine - HIGH 14B.safetensors",
        "Wan2.2 - I2V - King Machine - LOW 14B.safetensors",
        "Wan2.2 - I2V - King Machine 14B",
    ),
    ("scifi_wan_high_30 (1).safetensors", "scifi_wan_low_30 (1).safetensors", None),
    (
        "Another Model (HIGH Noise).safetensors",
        "Another Model (LOW Noise).safetensors",
        "Another Model",
    ),
    ("WAN_2.2_mix_HIGH (Final).safetensors", "WAN_2.2_mix_LOW (Final).safetensors", None),
    # a download script's short names
    ("lightx2v_I2V_HIGH.safetensors", "lightx2v_I2V_LOW.safetensors", "lightx2v_I2V"),
]

# single files meant for every expert (Wan 2.1 LoRAs, 5B LoRAs, no marker)
REAL_SINGLES = [
    "Wan21_CausVid_14B_T2V_lora_rank32_v2.safetensors",  # Kijai/WanVideo_comfy
    "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors",  # Kijai/WanVideo_comfy
    "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",  # nested
    "Wan21_PusaV1_LoRA_14B_rank512_bf16.safetensors",  # "LoRA" is not a "Lo" marker
    "Wan2_2_5B_FastWanFullAttn_lora_rank_128_bf16.safetensors",  # Kijai FastWan (5B)
    "probe_subdir/probe_nested_lora.safetensors",  # the recording's nested probe
    "clip_vision_h.safetensors",  # a lone weak "_h" is no marker (Comfy-Org repackaged name)
]

# halves without a partner but with an unambiguous marker: offered for their expert only
REAL_HALVES = [
    # lightx2v's MoE distill LoRA ships for the high-noise expert only
    ("Wan_2_2_I2V_A14B_HIGH_lightx2v_MoE_distill_lora_rank_64_bf16.safetensors", "high"),
    # alibaba-pai's MPS reward LoRA when only its high-noise half was downloaded
    ("Wan2.2-Fun-A14B-InP-high-noise-MPS.safetensors", "high"),
]

ALL = [f for h, lo, _ in REAL_PAIRS for f in (h, lo)] + REAL_SINGLES + [f for f, _ in REAL_HALVES]


@pytest.fixture(scope="module")
def options():
    return {o.files: o for o in pair_loras(ALL)}


@pytest.mark.parametrize(("high", "low", "label"), REAL_PAIRS)
def test_real_world_pairs(options, high, low, label):
    opt = options[(high, low)]
    assert (opt.kind, opt.high, opt.low, opt.file) == ("pair", high, low, None)
    if label is not None:
        assert opt.label == label
    assert "high" not in opt.label.lower().replace("highnoise", "")
    assert opt.label.strip() == opt.label and opt.label


@pytest.mark.parametrize("name", REAL_SINGLES)
def test_real_world_singles(options, name):
    opt = options[(name,)]
    assert (opt.kind, opt.file, opt.high, opt.low) == ("single", name, None, None)


@pytest.mark.parametrize(("name", "side"), REAL_HALVES)
def test_lone_halves_are_offered_for_their_expert(options, name, side):
    opt = options[(name,)]
    assert opt.kind == side and getattr(opt, side) == name and opt.file is None
    assert f"offered for the {side}-noise expert only" in opt.note


def test_every_file_is_offered_exactly_once():
    files = [f for o in pair_loras(ALL) for f in o.files]
    assert sorted(files) == sorted(ALL)


def test_looser_matches_say_so(options):
    kijai = options[
        (
            "Wan22_A14B_T2V_HIGH_Lightning_4steps_lora_250928_rank128_fp16.safetensors",
            "Wan22_A14B_T2V_LOW_Lightning_4steps_lora_250928_rank64_fp16.safetensors",
        )
    ]
    assert kijai.note.startswith("paired by name apart from digits")
    exact = options[
        (
            "wan2.2_i2v_magical_morph_highnoise.safetensors",
            "wan2.2_i2v_magical_morph_lownoise.safetensors",
        )
    ]
    assert exact.note == ""


def test_exact_pairs_win_over_loose_ones():
    # SYNTHETIC: two versions of one LoRA; each version pairs with its own other half
    names = ["x_v1_HIGH.safetensors", "x_v2_HIGH.safetensors", "x_v1_LOW.safetensors"]
    names.append("x_v2_LOW.safetensors")
    pairs = {o.files for o in pair_loras(names)}
    assert pairs == {
        ("x_v1_HIGH.safetensors", "x_v1_LOW.safetensors"),
        ("x_v2_HIGH.safetensors", "x_v2_LOW.safetensors"),
    }


def test_weak_markers_pair_only_with_a_partner():
    # SYNTHETIC: _H/_L, hi/lo pair when both exist; alone they are ordinary names
    got = {o.files: o.kind for o in pair_loras(["style_H.safetensors", "style_L.safetensors"])}
    assert got == {("style_H.safetensors", "style_L.safetensors"): "pair"}
    got = {o.files: o.kind for o in pair_loras(["motion-hi.pt", "motion-lo.pt", "size_L.pt"])}
    assert got == {("motion-hi.pt", "motion-lo.pt"): "pair", ("size_L.pt",): "single"}


def test_pairs_stay_in_their_folder():
    # SYNTHETIC: same names in two folders are two pairs, never crossed
    names = ["a/s_HIGH.safetensors", "b/s_LOW.safetensors", "b/s_HIGH.safetensors"]
    got = {o.files: o.kind for o in pair_loras(names)}
    assert got == {
        ("a/s_HIGH.safetensors",): "high",
        ("b/s_HIGH.safetensors", "b/s_LOW.safetensors"): "pair",
    }


def test_expert_folders_pair():
    # SYNTHETIC: the expert as a folder name (high/ and low/)
    (opt,) = pair_loras(["mine/high/style.safetensors", "mine/low/style.safetensors"])
    assert (opt.kind, opt.label) == ("pair", "mine/style")


# -- a job's stack --------------------------------------------------------------------------


def test_a_pair_a_half_and_singles_land_on_the_right_experts():
    uses = parse_loras(
        [
            {"high": "p_HIGH.safetensors", "low": "p_LOW.safetensors", "strength_low": 0.5},
            {"file": "s.safetensors", "strength": -0.25},
            {"high": "moe_HIGH.safetensors"},
        ],
        EXPERTS_14B,
    )
    assert [u.kind for u in uses] == ["pair", "single", "high"]
    assert [u.on("high") for u in uses] == [
        ("p_HIGH.safetensors", 1.0),
        ("s.safetensors", -0.25),
        ("moe_HIGH.safetensors", 1.0),
    ]
    assert [u.on("low") for u in uses] == [
        ("p_LOW.safetensors", 0.5),
        ("s.safetensors", -0.25),
        None,
    ]


def test_options_turn_into_uses():
    (opt,) = pair_loras(["x_HIGH.safetensors", "x_LOW.safetensors"])
    (use,) = parse_loras([opt.use(0.7, strength_high=1.2)], EXPERTS_14B)
    assert use == LoraUse(None, "x_HIGH.safetensors", "x_LOW.safetensors", 0.7, 1.2, None)
    assert use.to_json() == {
        "high": "x_HIGH.safetensors",
        "low": "x_LOW.safetensors",
        "strength": 0.7,
        "strength_high": 1.2,
    }


REFUSALS = [
    # (value, experts, field named, words in what is allowed)
    ("x.safetensors", EXPERTS_14B, "loras", "a list of up to 4"),
    ([{"file": f"{i}.safetensors"} for i in range(5)], EXPERTS_14B, "loras", "at most 4"),
    ([{"high": "a_H.safetensors", "low": "a_L.safetensors"}], ONE_MODEL, "loras[0]", "5B, one"),
    ([{"high": "a_HIGH.safetensors"}], ONE_MODEL, "loras[0]", "a single LoRA file"),
    ([{"file": "a.safetensors", "strength_low": 1}], ONE_MODEL, "loras[0].strength_low", "5B"),
    ([{"file": "a.safetensors", "strength": 2.5}], EXPERTS_14B, "loras[0].strength", "-2 to 2"),
    ([{"file": "a.safetensors", "strength": 0.333}], EXPERTS_14B, "loras[0].strength", "0.01"),
    ([{"file": "a.safetensors", "strength": "1"}], EXPERTS_14B, "loras[0].strength", "a number"),
    ([{"file": "a.safetensors", "strength": True}], EXPERTS_14B, "loras[0].strength", "a number"),
    ([{"high": "a.safetensors", "strength_high": -3}], EXPERTS_14B, "loras[0].strength_high", "-2"),
    ([{"file": "../secrets.safetensors"}], EXPERTS_14B, "loras[0].file", "loras folder"),
    ([{"file": "/abs/a.safetensors"}], EXPERTS_14B, "loras[0].file", "loras folder"),
    ([{"file": "a.txt"}], EXPERTS_14B, "loras[0].file", ".safetensors"),
    ([{"file": "a.safetensors", "high": "b.safetensors"}], EXPERTS_14B, "loras[0]", "not both"),
    ([{"strength": 1}], EXPERTS_14B, "loras[0]", '{"file": name}'),
    (["a.safetensors"], EXPERTS_14B, "loras[0]", '{"file": name}'),
    ([{"file": "a.safetensors", "weight": 1}], EXPERTS_14B, "loras[0].weight", "fields file"),
    ([{"file": "a.safetensors"}, {"high": "a.safetensors"}], EXPERTS_14B, "loras[1]", "once"),
]


@pytest.mark.parametrize(("value", "experts", "field", "words"), REFUSALS)
def test_refusals_name_the_field_and_what_is_allowed(value, experts, field, words):
    with pytest.raises(ParamError) as e:
        parse_loras(value, experts)
    assert e.value.param == field
    assert words in e.value.allowed, str(e.value)


def test_four_are_allowed_and_a_pair_counts_once():
    four = [{"high": "p_HIGH.safetensors", "low": "p_LOW.safetensors"}] + [
        {"file": f"s{i}.safetensors"} for i in range(MAX_STACK - 1)
    ]
    assert len(parse_loras(four, EXPERTS_14B)) == MAX_STACK


def test_the_templates_own_lora_is_refused_with_the_parameter_to_use():
    own = "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"
    with pytest.raises(ParamError) as e:
        parse_loras([{"high": own}], EXPERTS_14B, {own: "lora_high"})
    assert e.value.param == "loras[0]" and "lora_high" in e.value.allowed
