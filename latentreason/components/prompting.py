"""Chat prompts as token ids, with token spans inserted at exact positions.

Placeholders are never located by searching or by counting back from the end:
the prompt is rendered with a sentinel where the span goes, the text on each
side is tokenized separately, and the span's ids are put in between, so its
position is known by construction for every tokenizer and chat template.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from latentreason.errors import LatentReasonError

SLOT = "\ue000latentreason-slot\ue000"

MARKER_PAIRS = (
    ("<|box_start|>", "<|box_end|>"),  # Qwen2.5
    ("<|reserved_special_token_0|>", "<|reserved_special_token_1|>"),  # Llama 3
)
PLACEHOLDER_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "<unk>", "<pad>")


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """Id of ``token`` if it is a single token of this vocabulary, else None."""
    ids = tokenizer.convert_tokens_to_ids([token])
    tid = ids[0] if ids else None
    if tid is None or (tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return tid


def marker_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int] | None:
    """An existing begin/end special-token pair to frame soft thoughts, if the vocabulary has one."""
    for begin, end in MARKER_PAIRS:
        pair = token_id(tokenizer, begin), token_id(tokenizer, end)
        if None not in pair:
            return pair  # type: ignore[return-value]
    return None


def placeholder_id(tokenizer: PreTrainedTokenizerBase, token: str | None = None) -> int:
    """Id of the token used at placeholder positions (an existing special token).

    Args:
        tokenizer: the tokenizer.
        token: a token the user chose; by default the first of
            :data:`PLACEHOLDER_CANDIDATES` the vocabulary has, else pad or eos.

    Raises:
        LatentReasonError: if ``token`` is not a single token of the vocabulary.
    """
    if token is not None:
        tid = token_id(tokenizer, token)
        if tid is None:
            raise LatentReasonError(
                f"Placeholder token {token!r} is not a single token of this tokenizer's vocabulary."
            )
        return tid
    for candidate in PLACEHOLDER_CANDIDATES:
        tid = token_id(tokenizer, candidate)
        if tid is not None:
            return tid
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def text_token_id(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """The id of the one token that ``text`` tokenizes to (``" thought"``, ``"<|endoftext|>"``).

    Raises:
        LatentReasonError: ``text`` is not exactly one token; the message shows how it tokenizes.
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise LatentReasonError(
            f"{text!r} is not one token of this tokenizer: it tokenizes as {len(ids)} tokens {pieces!r} "
            f"(ids {ids}). Choose a text that is exactly one token, e.g. {pieces[0] if pieces else ' thought'!r}."
        )
    return ids[0]


def render_chat(tokenizer: PreTrainedTokenizerBase, system: str | None, user: str | list[str]) -> str:
    """The prompt text for one user turn (or several in a row), ending with the assistant's header.

    Tokenizers without a chat template (base models) get a plain layout, in
    which consecutive user turns are paragraphs of one question.
    """
    turns = [user] if isinstance(user, str) else user
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": "user", "content": turn} for turn in turns]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head = f"{system}\n\n" if system else ""
    question = "\n\n".join(turns)
    return f"{head}Question: {question}\nAnswer:"


def encode_chat(
    tokenizer: PreTrainedTokenizerBase,
    system: str | None,
    user: str | list[str],
    insert: Sequence[int] = (),
) -> tuple[list[int], int]:
    """Token ids of a chat prompt with ``insert`` spliced in at :data:`SLOT`.

    Args:
        tokenizer: the model's tokenizer.
        system: system prompt, or None.
        user: user message, or several consecutive user turns; :data:`SLOT`
            may occur once in them (where ``insert`` goes). If it does not,
            ``insert`` goes after the assistant header.
        insert: token ids to splice in.

    Returns:
        The ids and the index at which ``insert`` starts.
    """
    text = render_chat(tokenizer, system, user)
    before, slot, after = text.partition(SLOT)
    head = tokenizer(before, add_special_tokens=False)["input_ids"]
    tail = tokenizer(after, add_special_tokens=False)["input_ids"] if slot else []
    return head + list(insert) + tail, len(head)


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that closes an assistant turn (``<|im_end|>`` in ChatML), else eos.

    Found by rendering a short exchange with the chat template, so it is right
    for any template rather than assumed.
    """
    if tokenizer.chat_template:
        reply = "\ue001"
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}], tokenize=False
        )
        after = text.rpartition(reply)[2]
        ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after.strip() else []
        if ids and ids[0] in tokenizer.all_special_ids:
            return ids[0]
    return tokenizer.eos_token_id
