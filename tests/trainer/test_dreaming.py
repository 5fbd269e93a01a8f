"""Dreaming's pure parts: entities, teacher agreement, selection; and that it never reads the answers."""

import random

from trainer.config import SleepConfig
from trainer.dreaming import Dream, agreement, entities, select, template_questions, words


def test_entities_are_names_not_sentence_starts():
    assert entities("Quick update: Mirpa Lovos's new parrot is named Lodun!", 4) == ["Mirpa Lovos", "Lodun"]
    assert entities("Beldun Rabel works as a beekeeper at the harbour.", 4) == ["Beldun Rabel"]
    assert entities("Did you know Ettra Ettett became a clockmaker?", 4) == ["Ettra Ettett"]
    assert entities("I think so. Really.", 4) == []
    assert entities("Ann Lee met Bob Ray and Cy.", 1) == ["Ann Lee"]


def test_words_drop_stopwords_and_possessives():
    assert words("The door code for Gorten Belett's studio is 1475.") == {"door", "code", "gorten", "belett",
                                                                          "studio", "1475"}


def test_agreement_rewards_restating_the_episode():
    episode = "Beldun Rabel works as a beekeeper at the harbour."
    question = "What do you know about Beldun Rabel?"
    good, terms = agreement("Beldun Rabel is a beekeeper at the harbour.", episode, question)
    made_up, none = agreement("Beldun Rabel is a famous dragon from the mountains.", episode, question)
    assert terms == ["beekeeper", "harbour"]
    # source words {works, beekeeper, harbour}: recall 2/3; answer words {beekeeper, harbour}: precision 1
    assert good == 2 * (2 / 3) * 1 / (2 / 3 + 1)
    assert made_up == 0.0 and none == []


def test_templates_use_names_only():
    config = SleepConfig(template_questions=2, entities_per_episode=1, cloze_questions=2)
    episode = {"id": "x", "messages": [{"role": "user", "content": "Mirpa Lovos's parrot is Lodun."}],
               "probes": [{"question": "SECRET", "answers": ["SECRET"]}], "relation": "SECRET"}
    questions = template_questions(episode, config, random.Random(0))
    assert questions == ["Repeat what I told you about Mirpa Lovos.", "What do you know about Mirpa Lovos?",
                         'Continue what I told you: "Mirpa Lovos\'s ..."',
                         "Repeat what I told you about Mirpa Lovos's."]
    assert not any("SECRET" in q for q in questions)


def test_select_holds_out_probes_and_keeps_top_k_plus_random():
    config = SleepConfig(keep_top_k=2, keep_random=1, held_out_per_episode=1)
    dreams = [Dream("e", f"q{i}", f"a{i}", agreement=0.1 * i, key_terms=["k"], score=0.1 * i) for i in range(1, 7)]
    dreams.append(Dream("e", "q0", "ungrounded", agreement=0.0, score=-1))
    kept = select(dreams, config, random.Random(0))
    probes = [d for d in kept if d.held_out]
    trained = [d for d in kept if not d.held_out]
    assert len(probes) == 1 and len(trained) == 3
    rest = sorted((d for d in dreams if d.agreement > 0 and not d.held_out), key=lambda d: -d.score)
    assert trained[:2] == rest[:2]
    assert max(dreams, key=lambda d: d.score) in trained  # the best dream is never held out
    assert all(d.answer != "ungrounded" for d in kept)


def test_long_episodes_are_cut_to_fit(tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.dreaming import fitted_messages

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = SleepConfig(max_seq_len=120, dream_max_new_tokens=16)
    episode = {"messages": [{"role": "user", "content": "old " * 200},
                            {"role": "assistant", "content": "fine"},
                            {"role": "user", "content": "Mirpa Lovos's parrot is Lodun."}]}
    kept = fitted_messages(tokenizer, episode, config)
    assert kept[-1]["content"] == "Mirpa Lovos's parrot is Lodun."
    total = sum(len(tokenizer.encode(m["content"])) + 4 for m in kept)
    assert total <= 120 - 16 - 48 + 8
    short = {"messages": episode["messages"][1:]}
    assert fitted_messages(tokenizer, short, config) == short["messages"]
