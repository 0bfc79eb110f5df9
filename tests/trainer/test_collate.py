"""Answer-only labels on exactly the token sequence the engines send."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.dataset import Dataset
from core.vlm.samples import build_samples, chat_messages, render_images
from tests.fixtures.truth import DATASET, SMALL
from trainer.collate import IGNORE_INDEX, AnswerOnlyCollator, CollateError
from trainer.data import sample_config


@pytest.fixture(scope="module")
def processor(tiny_qwen):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_qwen)


@pytest.fixture(scope="module")
def items(truth, datasets_dir):
    ds = Dataset(datasets_dir / DATASET)
    samples = build_samples(truth[0], ds, tasks=("segmentation", "box_current"), config=sample_config(SMALL))
    picked = [samples[0], samples[1]]
    return [{"sample": s, "images": render_images(s, ds)} for s in picked]


def test_labels_are_the_answer_and_the_prompt_is_the_inference_prompt(processor, items):
    coll = AnswerOnlyCollator(processor)
    batch = coll(items)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["image_grid_thw"].shape[0] == 2  # one image per sample, both kept
    tok = processor.tokenizer
    for i, it in enumerate(items):
        s = it["sample"]
        labels = batch["labels"][i]
        kept = labels[labels != IGNORE_INDEX]
        # The loss sees the answer and the end of the turn, nothing else.
        assert tok.decode(kept) == s.answer + "<|im_end|>\n"
        # What precedes the answer is token for token what the engines encode at inference.
        text = processor.apply_chat_template(chat_messages(s), add_generation_prompt=True, tokenize=False)
        ref = processor(text=[text], images=it["images"], return_tensors="pt")["input_ids"][0]
        assert batch["input_ids"][i][: len(ref)].tolist() == ref.tolist()
        assert (labels[: len(ref)] == IGNORE_INDEX).all()
        n = int(batch["attention_mask"][i].sum())
        assert n == len(ref) + len(kept)
        assert (labels[n:] == IGNORE_INDEX).all() and (batch["input_ids"][i][n:] == tok.pad_token_id).all()
    assert coll.truncated == 0


def test_long_answers_are_cut_and_long_prompts_refused(processor, items):
    prompt_len = len(
        AnswerOnlyCollator(processor).encode(items[0]["sample"], items[0]["images"])["input_ids"]
    ) - len(
        processor.tokenizer(items[0]["sample"].answer + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
    )
    coll = AnswerOnlyCollator(processor, max_length=prompt_len + 5)
    enc = coll.encode(items[0]["sample"], items[0]["images"])
    assert len(enc["input_ids"]) == prompt_len + 5 and int((enc["labels"] != IGNORE_INDEX).sum()) == 5
    assert coll.truncated == 1
    with pytest.raises(CollateError, match=r"sample demo:0:segmentation:0: the prompt alone"):
        AnswerOnlyCollator(processor, max_length=prompt_len).encode(items[0]["sample"], items[0]["images"])
