import numpy as np

from simrag.config import ModelParams
from simrag.generation import generate, label_logprobs
from simrag.models import load_generator
from simrag.prompting import render

QUESTIONS = ["What is Docker?", "Explain how continuous integration runs tests on every push to a branch.", "Why?"]


def _prompts(generator):
    return [render(generator.tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]


def test_batched_generation_matches_one_by_one(tiny_model_dir):
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    prompts = _prompts(generator)
    batched = generate(generator, prompts, max_new_tokens=12, batch_size=3)
    single = [generate(generator, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]  # left padding leaves answers unchanged
    assert all(1 <= g.n_tokens <= 12 and g.seconds > 0 for g in batched)


def test_label_scores_one_token_and_full_sequence_paths_agree(tiny_model_dir):
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    prompts = _prompts(generator)
    fast = label_logprobs(generator, prompts, ["yes", "no", "maybe"], batch_size=2)
    full = label_logprobs(generator, prompts, ["yes", "no", "maybe so"], batch_size=2)  # one label of 2 tokens
    assert fast.shape == (3, 3) and np.all(fast < 0)
    assert np.allclose(fast[:, :2], full[:, :2], atol=1e-4)
    assert np.all(full[:, 2] < fast[:, 2])  # "maybe so" is less likely than "maybe" alone
