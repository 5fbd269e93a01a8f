"""The gate's graded reading: answer likelihoods, closed-book, checked against a forward pass by hand."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.chat import answer_ids, render
from trainer.likelihood import Likelihood, LikelihoodShift, key_token_mask, likelihoods, mean_change

SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return tokenizer, model


def test_the_key_mask_covers_exactly_the_key_terms_tokens(tiny):
    tokenizer, _ = tiny
    answer = "Mira Lodunsen's cat is called Parsnip, and it sleeps on Lodunsen's boat."
    mask = key_token_mask(tokenizer, answer, ["lodunsen", "parsnip"])
    ids = answer_ids(tokenizer, answer)
    assert mask is not None and len(mask) == len(ids) and not mask[-1]  # end of turn is never a key
    spelled = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert spelled.count("Lodunsen") == 2 and "Parsnip" in spelled
    assert "Mira" not in spelled and "cat" not in spelled and "boat" not in spelled


def _by_hand(model, tokenizer, question, answer, keys):
    """One unpadded sequence, log-softmax over the logits that predict the answer's tokens."""
    prompt = render(tokenizer, [{"role": "user", "content": question}], SYSTEM)
    target = answer_ids(tokenizer, answer)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + target])).logits[0]
    predicting = logits[len(prompt) - 1:-1]
    logprobs = F.log_softmax(predicting.float(), -1).gather(-1, torch.tensor(target)[:, None]).squeeze(-1)
    mask = torch.tensor(key_token_mask(tokenizer, answer, keys))
    return logprobs.mean().item(), (logprobs[mask].mean().item() if mask.any() else None)


def test_batched_readings_equal_one_sequence_at_a_time(tiny):
    tokenizer, model = tiny
    items = [("Where does Mira keep her boat?", "At the Lodunsen marina, berth nine.", ["lodunsen", "berth"]),
             ("Name a colour.", "Blue.", []),
             ("What did I tell you about the festival in the valley last spring?",
              "You said the Parsnip festival was cancelled because of the flood.", ["parsnip", "flood"])]
    batched = likelihoods(model, tokenizer, items, SYSTEM, batch_size=3)
    for item, reading in zip(items, batched):
        answer, key = _by_hand(model, tokenizer, *item)
        assert reading.answer == pytest.approx(answer, abs=1e-4)
        if key is None:
            assert reading.key is None and reading.reading == reading.answer
        else:
            assert reading.key == pytest.approx(key, abs=1e-4) and reading.reading == reading.key
            assert reading.key != pytest.approx(reading.answer, abs=1e-4)  # the mask picked a subset
    assert all(math.isfinite(r.answer) and r.answer < 0 for r in batched)


def test_an_answer_trained_on_reads_more_likely(tiny, tiny_model_dir):
    tokenizer, _ = tiny
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    item = ("Where does Mira keep her boat?", "At the Lodunsen marina.", ["lodunsen", "marina"])
    before = likelihoods(model, tokenizer, [item], SYSTEM)
    prompt = render(tokenizer, [{"role": "user", "content": item[0]}], SYSTEM)
    target = answer_ids(tokenizer, item[1])
    ids = torch.tensor([prompt + target])
    labels = torch.tensor([[-100] * len(prompt) + target])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
    after = likelihoods(model, tokenizer, [item], SYSTEM)
    assert model.training  # put back as it was found
    assert mean_change(before, after) > 0.1


def test_mean_change_reads_keys_where_there_are_any():
    before = [Likelihood(answer=-2.0, key=-4.0), Likelihood(answer=-1.0, key=None)]
    after = [Likelihood(answer=-2.5, key=-1.0), Likelihood(answer=-1.5, key=None)]
    assert mean_change(before, after) == pytest.approx((3.0 - 0.5) / 2)
    assert mean_change([], []) is None
    with pytest.raises(ValueError, match="not the same items"):
        mean_change(before, after[:1])


def test_the_shift_splits_probes_earlier_dreams_and_general_replies():
    before = [Likelihood(-3.0, -3.0), Likelihood(-2.0, None), Likelihood(-1.0, -1.0), Likelihood(-0.5, None)]
    after = [Likelihood(-1.0, -1.0), Likelihood(-2.0, None), Likelihood(-1.5, -1.5), Likelihood(-0.75, None)]
    shift = LikelihoodShift.between(before, after, probes=2, retention_asked=1)
    assert shift.recall_gain == pytest.approx(1.0) and shift.retention_change == pytest.approx(-0.5)
    assert shift.general_change == pytest.approx(-0.25)
    assert shift.to_dict() == {"recall_gain": 1.0, "retention_change": -0.5, "general_change": -0.25}
    empty = LikelihoodShift.between(before[:1], after[:1], probes=1, retention_asked=0)
    assert empty.retention_change is None and empty.general_change is None
