"""core.resources: the resources package, and DeepSpeed configs by name or path."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from core import resources
from core.resources import ResourceError, deepspeed_config


def test_the_folder_is_the_resources_package():
    assert resources.root() == importlib.resources.files("resources")
    assert resources.names("deepspeed", ".json") == ["zero2", "zero2_offload", "zero3", "zero3_offload"]
    assert (resources.path("prompts") / "segmentation.txt").is_file()


def test_a_deepspeed_config_by_name_with_or_without_json_or_by_path(tmp_path):
    shipped = resources.path("deepspeed", "zero3.json")
    assert deepspeed_config("zero3") == deepspeed_config("zero3.json") == shipped
    own = tmp_path / "zero3"  # a file of one's own wins over a shipped name
    own.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    assert deepspeed_config(own) == own
    with pytest.raises(
        ResourceError, match=r"zero9: no such file.*\(shipped: zero2, zero2_offload, zero3, zero3_offload\)"
    ):
        deepspeed_config("zero9")
    with pytest.raises(ResourceError, match=r"configs/zero2\.json: no such file"):
        deepspeed_config("configs/zero2.json")


def test_the_trainer_takes_a_name_and_refuses_an_unknown_one(capsys):
    from trainer.cli import build_parser

    base = ["finetune", "--store", "s", "--datasets", "d", "--base-model", "m", "--out", "o", "--deepspeed"]
    assert build_parser().parse_args([*base, "zero2_offload"]).deepspeed.name == "zero2_offload.json"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*base, "zero4"])
    assert exc.value.code == 2 and "argument --deepspeed: zero4: no such file" in capsys.readouterr().err
