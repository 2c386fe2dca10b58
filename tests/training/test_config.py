"""qcompress.training.config: a fit's configuration from YAML and flags, its identity, and configs of older runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcompress.commands.options import config_overrides, override_flags
from qcompress.errors import InputError
from qcompress.methods import get_method_class
from qcompress.methods.qtha.config import QthaConfig
from qcompress.training.config import FitConfig, build_fit_config, config_sha256


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_flags_override_the_yaml_file_and_seed_reaches_the_generator(tmp_path):
    file = write(tmp_path / "fit.yaml", "method: lora\nsteps: 7\nadapter: {rank: 4, alpha: 16}\n")
    config = build_fit_config(file, {"steps": 9, "adapter.rank": 2, "lr": None, "seed": 5})
    assert (config.method, config.steps, config.adapter.rank, config.adapter.alpha) == ("lora", 9, 2, 16)
    assert config.qpa.seed == 5  # --seed changes the whole run unless qpa.seed is given
    assert build_fit_config(None, {"seed": 5, "qpa.seed": 1}).qpa.seed == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: [1", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping of options, not list"),
        ("stepz: 3\n", "stepz"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        build_fit_config(write(tmp_path / "fit.yaml", text), {})


def test_a_config_file_that_is_not_utf8_or_missing_is_an_input_error(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"method: caf\xe9\n")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        build_fit_config(tmp_path / "latin1.yaml", {})
    with pytest.raises(InputError, match="not found"):
        build_fit_config(tmp_path / "absent.yaml", {})


def test_qtha_flags_land_in_its_method_config_which_qtha_validates():
    flags = {"method": "qtha", "qtha_inner": 32, "qtha_bond": 4, "qtha_layers": None}
    config = build_fit_config(None, config_overrides(flags, ["cores=2"]))
    assert config.method_config == {"inner": 32, "bond": 4, "cores": 2}
    options = get_method_class("qtha").options(config.method_config)
    assert options == QthaConfig(inner=32, bond=4, cores=2)
    with pytest.raises(InputError, match="method_config of 'qtha'"):
        get_method_class("qtha").options({"inner": 0})


def test_a_qtha_flag_on_another_method_is_refused_not_ignored():
    config = build_fit_config(None, config_overrides({"method": "qpa-lora", "qtha_inner": 32}))
    with pytest.raises(InputError, match="'qpa-lora' takes no options of its own .got inner.: drop them .--set, --qtha-\* flags"):
        get_method_class("qpa-lora").options(config.method_config)


def test_the_qtha_section_of_older_configs_is_read_as_its_method_config(tmp_path):
    """Runs written before QTHA owned its options carry ``qtha:`` (defaults for every other method)."""
    old_qtha = {"method": "qtha", "qtha": {"inner": 32, "bond": 4, "layers": None, "cores": 4, "simulator": "statevector"}}
    assert FitConfig.model_validate(old_qtha).method_config == old_qtha["qtha"]
    both = {**old_qtha, "method_config": {"inner": 16}}  # keys given in method_config win
    assert FitConfig.model_validate(both).method_config["inner"] == 16
    old_lora = {"method": "lora", "qtha": {"inner": 256}}
    assert FitConfig.model_validate(old_lora).method_config == {}  # it was always ignored there
    file = write(tmp_path / "old.yaml", "method: qtha\nqtha: {inner: 64}\n")
    assert build_fit_config(file, {}).method_config == {"inner": 64}


def test_the_identity_is_the_canonical_json_of_the_config():
    config = build_fit_config(None, {"method": "lora", "steps": 3})
    assert config.sha256() == config_sha256(config.model_dump(mode="json"))
    assert config.sha256() == build_fit_config(None, {"steps": 3, "method": "lora"}).sha256()
    assert config.sha256() != build_fit_config(None, {"method": "lora", "steps": 4}).sha256()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval_stride": 300, "eval_seq_len": 256}, "eval_stride .300. must not exceed eval_seq_len .256."),
        ({"warmup_steps": 10, "steps": 10}, "warmup_steps .10. must be below steps .10."),
    ],
)
def test_inconsistent_settings_are_refused(overrides, message):
    with pytest.raises(InputError, match=message):
        build_fit_config(None, overrides)


def test_an_invalid_value_names_the_value_and_the_flag_or_file_to_change(tmp_path):
    """The one-line error ends in its fix: the flag that gave the value, or the key in the YAML file."""
    file = write(tmp_path / "fit.yaml", "steps: 0\nadapter: {rank: -1}\n")
    flags = {"lr": -2.0, "batch_size": None, "rank": None}
    with pytest.raises(InputError) as refused:
        build_fit_config(file, config_overrides(flags), override_flags(flags))
    message = str(refused.value)
    assert "lr: Input should be greater than 0 (got -2.0)" in message and "steps: Input should be" in message
    assert message.endswith(f": change adapter.rank in {file}; change steps in {file}; change --lr")
    flags = {"rank": 0}
    with pytest.raises(InputError, match=r"adapter.rank: .* \(got 0\): change --rank$"):  # the flag, not the field's path
        build_fit_config(None, config_overrides(flags), override_flags(flags))
    with pytest.raises(InputError, match=r"\(got 'fp8'\)$"):  # no flags known: the value, and no made-up fix
        build_fit_config(None, {"precision": "fp8"})


def test_an_unknown_key_is_removed_and_a_unions_branches_point_at_their_field(tmp_path):
    file = write(tmp_path / "fit.yaml", "adapter: {targets: 5, rnk: 3}\nseed: -1\n")
    with pytest.raises(InputError) as refused:
        build_fit_config(file, {})
    # targets is a list or a string: pydantic reports each branch under the field, the fix names the field once;
    # the generator's seed copied from seed is not a key of the file, so only seed is named
    assert str(refused.value).endswith(
        f": change adapter.targets in {file}; remove adapter.rnk from {file}; change seed in {file}")


def test_a_method_option_out_of_range_says_how_to_set_it():
    with pytest.raises(InputError, match=r"n_frequency: .* \(got 0\): fix it with --set KEY=VALUE, or under method_config:"):
        get_method_class("fourierft").options({"n_frequency": 0})
    with pytest.raises(InputError, match=r"inner: .* \(got 0\): fix it with --qtha-inner, --qtha-bond, --qtha-layers or --set"):
        get_method_class("qtha").options({"inner": 0})


def test_warmup_defaults_to_a_tenth_of_the_steps():
    assert build_fit_config(None, {"steps": 50}).effective_warmup_steps == 5
    assert build_fit_config(None, {"steps": 50, "warmup_steps": 0}).effective_warmup_steps == 0
