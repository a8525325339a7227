"""A tiny LLaVA built locally for the training tests: a real ``transformers`` processor class and model class, a
byte-level BPE tokenizer trained here on a few words, random weights; nothing downloaded.

``LlavaProcessor`` is the processor: Qwen2-VL's processor class needs a video processor, which needs torchvision, not
a dependency of this project. The tiny vision tower sees 28x28 pixels in 14-pixel patches, so every image becomes
``IMAGE_TOKENS`` = 4 ``<image>`` tokens once the processor expands it.

``offline`` (a fixture for the test modules that use this) turns on ``huggingface_hub``'s offline mode and refuses
any socket connection that is not to this machine, so a test that would reach the network fails instead.
"""

from __future__ import annotations

import socket

import huggingface_hub.constants
import pytest

IMAGE_TOKEN = "<image>"
IMAGE_SIDE, PATCH = 28, 14
IMAGE_TOKENS = (IMAGE_SIDE // PATCH) ** 2
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", IMAGE_TOKEN]

# Roles in plain text, image parts as the processor's placeholder, every message ended by </s>.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    connect = socket.socket.connect

    def local_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a training test tried to reach the network: {address!r}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


def tiny_processor():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["user assistant the image describe what where is a of"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIDE}, crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
    )


def tiny_model(processor):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = processor.tokenizer
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=IMAGE_SIDE, patch_size=PATCH, projection_dim=16,
        ),
        text_config=LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            vocab_size=len(tokenizer), max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(config)
