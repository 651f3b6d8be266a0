"""The RAG prompt: a system prompt, numbered context passages and the question, via the chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simrag.retrieval import Hit

SYSTEM_PROMPT = (
    "You are a precise technical assistant. Answer the question using the numbered context passages. "
    "Be concise and use the terms of the context. If the context does not contain the answer, say so."
)
LABEL_INSTRUCTION = "Answer with one word: {labels}."


def fit_context(hits: Sequence[Hit], tokenizer: Any, max_tokens: int) -> list[str]:
    """Passage texts in rank order, within `max_tokens` generator tokens (the last one cut to fit)."""
    return fit_passages([hit.text for hit in hits], tokenizer, max_tokens)


def fit_passages(texts: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """The texts in order, within `max_tokens` generator tokens (the last one cut to fit)."""
    passages: list[str] = []
    budget = max_tokens
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if budget <= 0:
            break
        if len(ids) > budget:
            passages.append(tokenizer.decode(ids[:budget]).rstrip() + " …")
            break
        passages.append(text)
        budget -= len(ids)
    return passages


def rag_messages(question: str, passages: Sequence[str], instruction: str = "") -> list[dict[str, str]]:
    context = "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(passages, start=1))
    user = f"Context:\n{context}\n\nQuestion: {question.strip()}" if passages else f"Question: {question.strip()}"
    if instruction:
        user += f"\n{instruction}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def render(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt text that makes the model write the assistant's turn."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
