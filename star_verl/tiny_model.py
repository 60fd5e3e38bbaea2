"""`star-verl tiny-model DIR`: a tiny, randomly initialized Qwen2.5-VL (model, tokenizer, processor).

Built locally in seconds, nothing downloaded: the tokenizer is a byte-level BPE trained here on a few
sentences, with Qwen's special tokens and a Qwen2-VL chat template; the model has two text layers and
a two-block vision tower. It runs the same code paths as Qwen/Qwen2.5-VL-7B-Instruct (the processor's
image patching and pad tokens, mrope position ids) at a fraction of the cost: the model of
`star-verl smoke` and of the tests. The text attention has 2 heads of 32: vLLM's CPU attention backend
supports head sizes 32, 64, 80, ... only, and mrope's sections sum to half the head size ([4, 6, 6]).
"""

from __future__ import annotations

from pathlib import Path

# As in Qwen2.5-VL, <think>/<answer> are plain text, not special tokens (decoding with
# skip_special_tokens=True keeps them).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "You are shown two images of the same scene. Find every transformation of the objects.",
    "0: small gray metal cylinder 1: large red rubber cube 2: medium cyan glass sphere",
    "color shape size material gray red blue green brown purple cyan yellow cube sphere cylinder",
    "small medium large rubber metal glass 2.color.cyan, 4.size.small, 1.material.glass",
    "Step 1 per-view reference analysis [sofa, ball, behind] [chair, table, left of] Step 2 cross-view mapping",
    "Step 3 spatial reasoning. The answer is C. A. B. C. D. move_right:1.6,rotate_left:75 2.6 meters",
    "Based on these four images showing the scene from different viewpoints, what is to the right?",
    "system user assistant image view front back left right above below near far the a an of in on",
    "<think>reasoning</think><answer>C</answer> <think></think> <answer></answer>",
]


def build_tiny_qwen25vl(out_dir: str | Path, *, min_pixels: int = 28 * 28 * 4, max_pixels: int = 28 * 28 * 64) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint with tokenizer and processor to `out_dir`; return it.
    The same arguments give the same files (seeded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        additional_special_tokens=SPECIAL_TOKENS[3:7],
    )
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}

    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor()
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=CHAT_TEMPLATE
    )

    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
            rope_theta=10000.0,
            tie_word_embeddings=True,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
            in_channels=3,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard save: no bar
    try:
        model.save_pretrained(out)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from star_verl.cli import SUBCOMMANDS, HelpFormatter

    parser = argparse.ArgumentParser(prog="star-verl tiny-model", description=SUBCOMMANDS["tiny-model"][1], formatter_class=HelpFormatter)
    parser.add_argument("out", type=Path, metavar="DIR", help="output folder (created; existing model files are replaced)")
    args = parser.parse_args(argv)
    out = build_tiny_qwen25vl(args.out)
    print(f"tiny Qwen2.5-VL written to {out} (use it as actor_rollout_ref.model.path / model.path, or smoke --model)")
    return 0
