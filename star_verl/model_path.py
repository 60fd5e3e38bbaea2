"""Where a model path points, told before transformers is asked: a local folder, a hub id in HF_HOME's
cache, a hub id to download (the hub answered one connection attempt), or nothing loadable, with the
cause. Used by `star-verl doctor` and `star-verl eval generate`; transformers alone would retry every
file with back-off (about a minute of warnings per model off the network), or, for a folder that does
not exist, answer with a hub repo-id error."""

from __future__ import annotations

import os


def _looks_like_a_path(path: str) -> bool:
    """A filesystem path rather than a hub id (`owner/name`: at most one slash, no leading / . ~)."""
    return path.startswith(("/", ".", "~")) or path.count("/") > 1


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub (HF_ENDPOINT) cannot be reached, in one connection attempt; None when it can.
    transformers would otherwise retry every file with back-off (about a minute of warnings per model)."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return f"{constants.ENDPOINT} is unreachable ({type(exc).__name__}: {exc})"
    return None


def model_source(path: str) -> tuple[str | None, bool]:
    """(why the model cannot be loaded, or None; whether to load from local files only). A local folder
    loads as it is; a hub id loads from HF_HOME's cache, or downloads when the hub answers (one attempt,
    no retries); anything else fails at once, naming the cause."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if os.path.isdir(path):
        return None, True
    if os.path.exists(path):
        return f"{path} is a file, not a model folder (expected a folder with config.json and the tokenizer/processor files)", True
    if _looks_like_a_path(path):
        return f"{path} does not exist (not a local folder)", True
    try:
        validate_repo_id(path)
    except HFValidationError as exc:
        return f"{path} is neither a local folder nor a hub id ({exc})", True
    if _in_hub_cache(path):
        return None, True
    if constants.HF_HUB_OFFLINE:
        return (
            f"{path} is not a local folder and not in HF_HOME's cache ({constants.HF_HUB_CACHE}); HF_HUB_OFFLINE is set, so nothing is downloaded",
            True,
        )
    unreachable = hub_unreachable()
    if unreachable is not None:
        return f"{path} is not a local folder and not in HF_HOME's cache ({constants.HF_HUB_CACHE}), and {unreachable}", True
    return None, False


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
