"""`robo-trainer`: bad input gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest

from tests.fixtures.servers import free_ports, running_server
from tests.fixtures.truth import REPO
from trainer.cli import build_parser, main
from trainer.finetune import FinetuneConfig
from trainer.round import RoundConfig, RoundError, run_round


def server_config(tmp_path, datasets_dir):
    from backend.config import ServerConfig

    bind, events = (f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    return ServerConfig(datasets=[datasets_dir], store=tmp_path / "served.db", bind=bind, events=events)


def _finetune_args(store, datasets, out, *extra):
    return ["finetune", "--store", str(store), "--datasets", str(datasets), "--base-model", "none",
            "--out", str(out), *extra]  # fmt: skip


def test_finetune_refuses_bad_input_by_name(tmp_path, accepted_store, datasets_dir, capsys):
    assert main(_finetune_args(tmp_path / "missing.db", datasets_dir, tmp_path / "o")) == 1
    assert "store = " in capsys.readouterr().err
    bad = tmp_path / "ds.json"
    bad.write_text("{not json")
    assert main(_finetune_args(accepted_store, datasets_dir, tmp_path / "o", "--deepspeed", str(bad))) == 1
    assert f"deepspeed = {bad}: not valid JSON" in capsys.readouterr().err
    assert main(_finetune_args(accepted_store, tmp_path / "nowhere", tmp_path / "o")) == 1
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(
            _finetune_args(
                accepted_store, datasets_dir, tmp_path / "o", "--tasks", "segmentation,mindreading"
            )
        )
    assert exc.value.code == 2
    assert "mindreading" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_launchers_rank_argument_and_sample_options(tmp_path, accepted_store, datasets_dir):
    # The deepspeed launcher puts --local_rank=N right after the module, before the subcommand.
    args = build_parser().parse_args(
        ["--local_rank=1", *_finetune_args(accepted_store, datasets_dir, tmp_path / "o", "--frame-side", "56",
                                           "--sample-option", "cameras=[\"observation.images.top\"]")]
    )  # fmt: skip
    assert args.local_rank == 1
    from trainer.cli import _sample_options

    assert _sample_options(args) == {"frame_side": 56, "cameras": ["observation.images.top"]}


def test_evaluate_without_held_out_episodes_says_so(tmp_path, accepted_store, datasets_dir, capsys):
    code = main(["evaluate", "--model", str(tmp_path), "--store", str(accepted_store), "--datasets",
                 str(datasets_dir), "--heldout-fraction", "0"])  # fmt: skip
    assert code == 1
    assert "no accepted episodes in the heldout split" in capsys.readouterr().err


def test_round_without_a_backend_fails_before_training(tmp_path, accepted_store, datasets_dir, tiny_qwen):
    ft = FinetuneConfig(
        store=accepted_store, datasets=[datasets_dir], base_model=str(tiny_qwen), out=tmp_path / "x"
    )
    cfg = RoundConfig(backend="tcp://127.0.0.1:9", runs=tmp_path / "runs", finetune=ft, connect_timeout=0.5)
    with pytest.raises(RoundError, match="does not answer"):
        run_round(cfg)
    assert not list((tmp_path / "runs").iterdir())
    with running_server(server_config(tmp_path, datasets_dir)) as srv:
        cfg.backend = srv.config.bind
        cfg.finetune.heldout_fraction = 0.0
        with pytest.raises(RoundError, match="a round needs both"):
            run_round(cfg)
    assert not list((tmp_path / "runs").iterdir())
    with pytest.raises(ValueError, match="promote"):
        RoundConfig(backend="tcp://127.0.0.1:9", runs=tmp_path, finetune=ft, promote="sometimes")


def test_shipped_deepspeed_configs_are_filled_by_the_trainer():
    """Every config leaves batch sizes, precision and buckets to the HF Trainer ("auto")."""
    import json

    for name in ("zero2", "zero2_offload", "zero3", "zero3_offload"):
        cfg = json.loads((REPO / "resources" / "deepspeed" / f"{name}.json").read_text())
        assert cfg["train_micro_batch_size_per_gpu"] == cfg["gradient_accumulation_steps"] == "auto"
        assert cfg["bf16"]["enabled"] == "auto"
        assert cfg["zero_optimization"]["stage"] == int(name[4])
        offload = "offload_optimizer" in cfg["zero_optimization"]
        assert offload == name.endswith("offload")
        # A DeepSpeed CPU optimizer only where the optimizer state lives on the CPU.
        assert ("optimizer" in cfg) == offload


def test_a_config_written_as_flags_parses_back_to_itself(tmp_path, accepted_store, datasets_dir):
    """finetune_argv and the parser are both derived from FinetuneConfig's fields: a round's child
    process trains exactly the config the round made."""
    from trainer.cli import _finetune_config
    from trainer.config import finetune_argv

    cfg = FinetuneConfig(
        store=accepted_store, datasets=[datasets_dir, datasets_dir], base_model="m", out=tmp_path / "o",
        lora=True, lora_r=4, deepspeed=REPO / "resources" / "deepspeed" / "zero2.json", tasks=("segmentation",),
        learning_rate=3e-4, gradient_checkpointing=False, round=7, dataloader_workers=2, precision="fp32",
        sample_options={"frame_side": 56, "cameras": ["observation.images.top"]},
    )  # fmt: skip
    assert _finetune_config(build_parser().parse_args(finetune_argv(cfg))) == cfg
    default = FinetuneConfig(
        store=accepted_store, datasets=[datasets_dir], base_model="m", out=tmp_path / "o"
    )
    assert _finetune_config(build_parser().parse_args(finetune_argv(default))) == default


def test_flag_values_are_checked_by_the_config_rules(tmp_path, accepted_store, datasets_dir, capsys):
    for extra, said in (
        (["--lora-r", "0"], "lora_r = 0: must be >= 1"),
        (["--warmup-ratio", "1.5"], "warmup_ratio = 1.5: must be in [0, 1)"),
        (["--epochs", "0"], "epochs = 0.0: must be > 0 when max_steps is not set"),
    ):
        assert main(_finetune_args(accepted_store, datasets_dir, tmp_path / "o", *extra)) == 1
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(_finetune_args(accepted_store, datasets_dir, tmp_path / "o", "--precision", "fp8"))
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err
