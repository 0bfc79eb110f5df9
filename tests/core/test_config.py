"""core.config: one declaration per field gives its default, its rule, its message and its flag."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from core.config import Rule, argument_fields, setting, validate
from core.errors import RoboAnnotateError


class ToyError(RoboAnnotateError, ValueError):
    pass


def _words(text: str) -> tuple[str, ...]:
    if text == "bad":
        raise argparse.ArgumentTypeError("bad is not a word")
    return tuple(text.split(","))


@dataclasses.dataclass
class Toy:
    path: Path = setting(help="where")
    count: int = setting(1, ge=1, help="how many")
    ratio: float = setting(0.5, ge=0, lt=1)
    delay: float = setting(1.0, ge=0, unit="seconds")
    workers: float = setting(0, ge=0, integer=True)
    mode: str = setting("auto", choices=("auto", "fast"))
    limit: int | None = setting(None, gt=0)
    learning_rate: float | None = setting(None, flags=("--lr",), help="step size")
    words: tuple[str, ...] = setting(("a",), parse=_words)
    on: bool = setting(True, help="switch")
    extra: dict = setting(default_factory=dict, cli=False)

    def __post_init__(self) -> None:
        validate(self, error=ToyError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 0}, "count = 0: must be >= 1"),
        ({"ratio": 1.0}, "ratio = 1.0: must be in [0, 1)"),
        ({"ratio": float("nan")}, "ratio = nan: must be in [0, 1)"),
        ({"delay": -0.5}, "delay = -0.5: must be >= 0 seconds"),
        ({"workers": 1.5}, "workers = 1.5: must be a whole number >= 0"),
        ({"mode": "slow"}, "mode = 'slow': must be one of auto, fast"),
        ({"limit": 0}, "limit = 0: must be > 0"),
        ({"count": "3"}, "count = '3': must be >= 1"),
        ({"count": True}, "count = True: must be >= 1"),
    ],
)
def test_a_bad_value_is_refused_by_name_value_and_rule(change, message):
    with pytest.raises(ToyError) as exc:
        Toy(path=Path("p"), **change)
    assert str(exc.value) == message


def test_good_values_and_unset_optionals_pass():
    toy = Toy(path=Path("p"), count=3, ratio=0.0, delay=0, workers=2.0, mode="fast", limit=None)
    assert toy.count == 3 and toy.limit is None


def test_the_label_and_a_subset():
    toy = Toy(path=Path("p"))
    toy.count = 0
    toy.ratio = 2
    with pytest.raises(ValueError, match=r"^Toy option 'ratio' = 2: must be in \[0, 1\)$"):
        validate(toy, label="Toy option '{name}'", only=["ratio"])
    with pytest.raises(ValueError, match=r"^Toy\.count = 0"):
        validate(toy, label="Toy.{name}")


def test_rules_say_themselves():
    assert Rule(gt=0, unit="seconds").describe() == "must be > 0 seconds"
    assert Rule(ge=0, le=1).describe() == "must be in [0, 1]"
    assert Rule(gt=0.5, lt=2.5).describe() == "must be in (0.5, 2.5)"
    assert Rule(le=10).describe() == "must be <= 10"
    assert Rule(integer=True).describe() == "must be a whole number"


def test_argument_fields_feed_hf_argument_parser(capsys):
    HfArgumentParser = pytest.importorskip("transformers").HfArgumentParser

    parser = HfArgumentParser([argument_fields(Toy, exclude=["delay"])])
    ns = parser.parse_args(["--path", "x", "--lr", "0.1", "--words", "b,c", "--no-on", "--mode", "fast"])
    assert ns.path == Path("x") and ns.learning_rate == 0.1 and ns.words == ("b", "c")
    assert ns.on is False and ns.mode == "fast" and ns.count == 1 and ns.limit is None
    assert not hasattr(ns, "extra") and not hasattr(ns, "delay")
    assert parser.parse_args(["--path", "x", "--learning-rate", "2"]).learning_rate == 2.0
    # Help text and defaults come from the config.
    text = parser.format_help()
    assert "step size" in text and "how many" in text
    # Bad flag values are argparse's usage errors (exit 2), named by flag.
    for argv, said in ((["--words", "bad"], "bad is not a word"), (["--mode", "slow"], "invalid choice")):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["--path", "x", *argv])
        assert exc.value.code == 2 and said in capsys.readouterr().err
    # Defaults can be replaced (None: decided later), fields can be picked.
    view = argument_fields(Toy, include=["path", "count"], defaults={"count": None})
    assert [f.name for f in dataclasses.fields(view)] == ["path", "count"]
    assert HfArgumentParser([view]).parse_args(["--path", "x"]).count is None


def test_a_config_made_from_parsed_flags_is_validated():
    HfArgumentParser = pytest.importorskip("transformers").HfArgumentParser

    view = argument_fields(Toy)
    ns = HfArgumentParser([view]).parse_args(["--path", "x", "--count", "0"])
    with pytest.raises(ToyError, match="count = 0: must be >= 1"):
        Toy(**vars(ns))


def test_flag_options_give_a_hand_spelled_flag_its_default_and_help():
    from core.config import flag_options

    assert flag_options(Toy, "delay") == {"default": 1.0, "help": "default 1.0"}
    assert flag_options(Toy, "count") == {"default": 1, "help": "how many (default 1)"}
    assert flag_options(Toy, "limit", help="at most") == {"default": None, "help": "at most"}
    with pytest.raises(KeyError, match="no field 'nope'"):
        flag_options(Toy, "nope")
    with pytest.raises(ValueError, match="no plain default"):
        flag_options(Toy, "path")
