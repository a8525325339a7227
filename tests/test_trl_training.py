"""TRL's own code paths over the mixed training view of all eight configs, streamed from the sample build: its
vision-language data collator, and two ``SFTTrainer`` steps of a tiny randomly initialised LLaVA (``tiny_vlm``) on
the CPU. Nothing is downloaded (``offline``), nothing is saved or reported.
"""

from __future__ import annotations

from collections import Counter

import datasets
import pytest
import torch

from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from publish_fixtures import ALL_CONFIGS, sample_build
from svitpipe.training import mix
from tiny_vlm import IMAGE_TOKEN, IMAGE_TOKENS, offline, tiny_model, tiny_processor  # noqa: F401 (offline is a fixture)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sample_build(tmp_path_factory)


@pytest.fixture(autouse=True)
def short_shutdown_sleep(monkeypatch):
    """Interleaved Parquet streams sleep 5 s whenever an iterator ends (see test_training_recipe.py)."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.1)


def mixed_stream(folder, **options):
    streams = {name: datasets.load_dataset(str(folder), name, split="train", streaming=True) for name in ALL_CONFIGS}
    return mix(streams, stopping_strategy="all_exhausted_without_replacement", **options)


def test_trl_collator_over_the_mixed_stream(folder, offline):
    processor = tiny_processor()
    collator = DataCollatorForVisionLanguageModeling(processor)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    rows = list(mixed_stream(folder, per="qa", box_form="internvl"))
    batch_size = 8
    sources = Counter()
    for start in range(0, len(rows), batch_size):
        examples = rows[start:start + batch_size]
        images = sum(len(example["images"]) for example in examples)
        batch = collator([dict(example) for example in examples])
        assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
        assert batch["input_ids"].shape[0] == len(examples)
        assert batch["pixel_values"].shape[0] == images
        per_row = (batch["input_ids"] == image_token_id).sum(dim=1).tolist()
        assert per_row == [IMAGE_TOKENS * len(example["images"]) for example in examples]
        assert torch.equal(batch["labels"] == -100, batch["attention_mask"] == 0)
        sources.update(example["source"] for example in examples)
    assert set(sources) == set(ALL_CONFIGS)


def test_two_sft_trainer_steps_on_the_mixed_stream(folder, offline, tmp_path):
    processor = tiny_processor()
    model = tiny_model(processor)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        max_length=None,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=mixed_stream(folder), processing_class=processor)
    result = trainer.train()
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(loss > 0 and loss == loss for loss in losses)
    assert result.training_loss > 0
    changed = [name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])]
    assert any("vision_tower" in name for name in changed) and any("multi_modal_projector" in name for name in changed)
    assert any("language_model" in name for name in changed)
    assert not any((tmp_path / "out").glob("checkpoint-*"))
