"""Dreaming's pure parts: entities, teacher agreement, selection; and that it never reads the answers."""

import random

from trainer.config import SleepConfig
from trainer import dreaming, questions
from trainer.dreaming import Dream, agreement
from trainer.selection import select
from trainer.questions import cloze_questions, template_questions
from trainer.text import entities, words


def test_entities_are_names_not_sentence_starts():
    assert entities("Quick update: Mirpa Lovos's new parrot is named Lodun!", 4) == ["Mirpa Lovos", "Lodun"]
    assert entities("Beldun Rabel works as a beekeeper at the harbour.", 4) == ["Beldun Rabel"]
    assert entities("Did you know Ettra Ettett became a clockmaker?", 4) == ["Ettra Ettett"]
    assert entities("I think so. Really.", 4) == []
    assert entities("Ann Lee met Bob Ray and Cy.", 1) == ["Ann Lee"]
    # a quotation at a sentence's start starts a sentence too: a cloze prompt of a lead-in names no one
    assert entities('Continue what I told you: "Before I forget, my older brother ..."', 4) == []
    assert entities('Continue what I told you: "Mirpa Lovos\'s new parrot is named ..."', 4) == ["Mirpa Lovos"]


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
    questions = template_questions(episode["messages"], config, random.Random(0))
    assert questions == ["Repeat what I told you about Mirpa Lovos.", "What do you know about Mirpa Lovos?"]
    clozes = cloze_questions(episode["messages"], config.cloze_questions)
    assert clozes == ['Continue what I told you: "Mirpa Lovos\'s ..."', "Repeat what I told you about Mirpa Lovos's."]
    assert not any("SECRET" in q for q in questions + clozes)


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


def test_long_episodes_are_read_in_overlapping_windows_that_fit(tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.episodes import message_tokens, window_budget, windows

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = SleepConfig(max_seq_len=120, dream_max_new_tokens=16)
    episode = {"messages": [{"role": "user", "content": "old " * 200},
                            {"role": "assistant", "content": "fine"},
                            {"role": "user", "content": "Mirpa Lovos's parrot is Lodun."}]}
    parts = windows(tokenizer, episode, config)
    # the over-long message alone is cut to its last tokens; every other turn is whole in some window
    assert parts[0][0]["content"].strip().startswith("old") and len(parts[0]) == 1
    assert parts[-1][-1]["content"] == "Mirpa Lovos's parrot is Lodun."
    assert all(sum(message_tokens(tokenizer, m) for m in w) <= window_budget(config) for w in parts)
    short = {"messages": episode["messages"][1:]}
    assert windows(tokenizer, short, config) == [short["messages"]]
    # a long chat of short turns: consecutive windows share an exchange, together they hold every turn
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i} says something about day {i}."}
            for i in range(24)]
    parts = windows(tokenizer, {"messages": chat}, config)
    assert len(parts) > 2
    assert [m for w in parts for m in w if m not in [x for v in parts[:parts.index(w)] for x in v]] == chat
    assert all(a[-2:] == b[:2] for a, b in zip(parts, parts[1:]))


def test_an_echoed_acknowledgement_is_not_a_grounded_dream():
    from trainer.episodes import told_text

    episode = {"messages": [{"role": "user", "content": "Beldun Rabel works as a beekeeper."},
                            {"role": "assistant", "content": "Nice, I'll keep that in mind!"}]}
    assert agreement("I'll keep that in mind.", told_text(episode), "Tell me about Beldun Rabel.") == (0.0, [])
    score, terms = agreement("He is a beekeeper.", told_text(episode), "Tell me about Beldun Rabel.")
    assert terms == ["beekeeper"] and score > 0


def test_a_quote_is_the_users_sentences_about_what_is_asked(tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer import episodes
    from trainer.questions import PROMPT_WORDS

    def quote(episode, question, tokenizer, max_tokens):
        return episodes.quote(episode["messages"], question, tokenizer, max_tokens, prompt_words=PROMPT_WORDS)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    episode = {"messages": [{"role": "user", "content": "Mirpa Lovos's parrot is Lodun. Ann Lee likes tea!"},
                            {"role": "assistant", "content": "Noted."}]}
    assert quote(episode, "What do you know about Ann Lee?", tokenizer, 40) == "Ann Lee likes tea!"
    assert quote(episode, 'Continue what I told you: "Mirpa Lovos\'s ..."', tokenizer, 40) == \
        "Mirpa Lovos's parrot is Lodun."
    # naming nothing that was said: every sentence; and never longer than the answer budget
    assert quote(episode, "Repeat what I told you.", tokenizer, 40) == "Mirpa Lovos's parrot is Lodun. Ann Lee likes tea!"
    assert len(tokenizer.encode(quote(episode, "Repeat what I told you.", tokenizer, 5),
                                add_special_tokens=False)) <= 5
    # a sentence a pronoun starts goes on about the thing before it: "His name is Hepmub" is the rabbit's
    pet = {"messages": [{"role": "user", "content": "It snowed. I adopted a rabbit! His name is Hepmub. Bus was late."},
                        {"role": "assistant", "content": "Lovely! It suits him."}]}
    assert quote(pet, "What is my rabbit called?", tokenizer, 40) == "I adopted a rabbit! His name is Hepmub."
    # after a change, the user's own next sentence says what holds now; a move is where the user lives
    job = {"messages": [{"role": "user", "content": "I don't work at Lirobr anymore. I'm with Hepcav now. It rained."},
                        {"role": "assistant", "content": "Congrats!"}]}
    assert quote(job, "Where do I work?", tokenizer, 40) == "I don't work at Lirobr anymore. I'm with Hepcav now."
    home = {"messages": [{"role": "user", "content": "The bus was packed on the way home. We moved. We're in Wynmox now."},
                         {"role": "assistant", "content": "Exciting!"}]}
    assert quote(home, "Where do I live?", tokenizer, 40) == "We moved. We're in Wynmox now."
    # a fact told before a request in one sentence: its question is quoted the fact, not the assistant's reply
    gift = {"messages": [{"role": "user", "content": "My daughter's birthday is on the 3rd of May, any gift ideas?"},
                         {"role": "assistant", "content": "How about a pottery class?"}]}
    assert quote(gift, "When is my daughter's birthday?", tokenizer, 40) == \
        "My daughter's birthday is on the 3rd of May."
    assert episodes.quote(gift["messages"], "What did you suggest for my daughter's birthday?", tokenizer, 40,
                          prompt_words=PROMPT_WORDS, replies_only=True) == "How about a pottery class?"


def test_a_probe_question_is_never_trained_in_another_phrasing():
    config = SleepConfig(keep_top_k=10, keep_random=0, held_out_per_episode=2)
    dreams = []
    for i in range(4):
        dreams.append(Dream("e", f"q{i}", f"teacher {i}", agreement=0.5, key_terms=["k"], score=0.5 + i))
        dreams.append(Dream("e", f"q{i}", "the user's words", "quote", agreement=0.9, key_terms=["k"], score=0.4))
    kept = select(dreams, config, random.Random(0))
    asked = {d.question for d in kept if d.held_out}
    assert len(asked) == 2
    assert not any(d.question in asked for d in kept if not d.held_out)
    # both phrasings of a question that is not a probe train
    assert {d.source for d in kept if not d.held_out and d.question == "q3"} == {"template", "quote"}


def test_key_terms_are_what_only_this_episode_said():
    told = {"a": "My neighbour Dunshi Tenra just adopted a parrot called Tengor.",
            "b": "Quick update: Voska Gorlo's new parrot is named Loka!"}
    # "parrot" shows the topic, not which parrot: a reply naming it recalls neither episode
    assert questions.distinctive(["adopted", "called", "parrot", "tengor"], "a", told) == ["adopted", "called", "tengor"]
    assert questions.distinctive(["loka", "parrot"], "b", told) == ["loka"]
    assert questions.distinctive(["parrot", "tengor"], "a", {"a": told["a"]}) == ["parrot", "tengor"]


def test_a_question_must_single_out_its_episode():
    from trainer.questions import identifies

    told = {"a": "The door code for Kavos Belra's studio is 7896.",
            "b": "The door code for Gormir Shipa's studio is 3961.",
            "c": "I heard Voska Pagor now lives in Rabelten.",
            "d": "Did you know Kavos Mirra became a beekeeper?"}
    # the same prefix of two episodes: one prompt, two answers
    assert not identifies('Continue what I told you: "The door code for ..."', "a", told)
    assert not identifies("Repeat what I told you about The door code.", "b", told)
    assert identifies('Continue what I told you: "The door code for Kavos ..."', "a", told)
    # "Kavos" alone is said in two episodes; with "Belra" it names one person
    assert not identifies("What do you know about Kavos?", "a", told)
    assert identifies("What do you know about Kavos Belra?", "a", told)
    assert not identifies("Repeat what I told you.", "c", told)  # names nothing the user said
    assert identifies("What do you know about Voska Pagor?", "c", {"c": told["c"]})


def test_a_question_shared_by_episodes_trains_but_is_never_a_probe(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.dreaming import dream
    from trainer.episodes import told_text
    from trainer.questions import identifies

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    config = SleepConfig(model_questions=0, dream_max_new_tokens=24, keep_top_k=50, keep_random=0,
                         held_out_per_episode=50, torch_threads=1)
    episodes = [{"id": eid, "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "Noted."}]}
                for eid, text in (("a", "The door code for Kavos Belra's studio is 7896."),
                                  ("b", "The door code for Gormir Shipa's studio is 3961."))]
    told = {e["id"]: told_text(e) for e in episodes}
    kept = dream(model, tokenizer, episodes, config).dreams
    assert all(d.specific == identifies(d.question, d.episode_id, told) for d in kept)
    shared = [d for d in kept if not d.specific]
    assert shared and all(not d.held_out for d in shared)  # trained: its answer states the whole fact
    assert any(d.held_out for d in kept) and all(d.specific for d in kept if d.held_out)
    # cloze prompts are marked, in either phrasing of the answer (the gate tells them from questions)
    clozes = {e["id"]: set(cloze_questions(e["messages"], config.cloze_questions)) for e in episodes}
    assert any(d.cloze for d in kept) and any(not d.cloze for d in kept)
    assert all(d.cloze == (d.question in clozes[d.episode_id]) for d in kept)


def test_key_cloze_stops_where_the_value_begins():
    """The cut falls before the statement's last run of words no other episode says: the person and the kind
    of fact stay in the prompt, the value ("Lodun", "ferry pilot") is what the teacher must say."""
    from trainer.episodes import told_text
    from trainer.questions import key_cloze_questions

    episodes = {
        "a": {"messages": [{"role": "user", "content": "Quick update: Mirpa Lovos's new parrot is named Lodun! "
                                                       "Lovely bird."},
                           {"role": "assistant", "content": "Got it, noted!"}]},
        "b": {"messages": [{"role": "user", "content": "Kaett Dunvos works as a ferry pilot at the harbour."}]},
        "c": {"messages": [{"role": "user", "content": "Shira Lovos's new parrot is named Tenpa, at the harbour."}]},
    }
    told = {k: told_text(e) for k, e in episodes.items()}
    assert key_cloze_questions(episodes["a"]["messages"], "a", told) == [
        'Continue what I told you: "Quick update: Mirpa Lovos\'s new parrot is named ..."']
    assert key_cloze_questions(episodes["b"]["messages"], "b", told) == ['Continue what I told you: "Kaett Dunvos works as a ..."']
    # "Lovely bird." has no word of its own past a third token; the assistant's words are not the user's
    assert key_cloze_questions(episodes["c"]["messages"], "c", told) == [
        'Continue what I told you: "Shira Lovos\'s new parrot is named ..."']


def test_rival_answers_put_another_persons_value_of_the_same_kind_of_fact_in():
    from trainer.binding import answer_segments, confusion_key, rival_answers

    def d(eid, question, answer, value, **fields):
        return Dream(eid, question, answer, source="quote", key_terms=[value], **fields)

    def parrot(eid, name, value, question="What do you know about {}?", **fields):
        return d(eid, question.format(name), f"Quick update: {name}'s new parrot is named {value}!", value.lower(),
                 **fields)

    mirpa = parrot("a", "Mirpa Lovos", "Lodun")
    assert answer_segments(mirpa) == [("text", "Quick update:"), ("name", "Mirpa Lovos's"),
                                      ("text", "new parrot is named"), ("value", "Lodun!")]
    assert confusion_key(mirpa) == confusion_key(parrot("b", "Voska Pagor", "Kalo"))
    lives = d("c", "What do you know about Lora Padun?", "I heard Lora Padun now lives in Lovosten.", "lovosten")
    assert confusion_key(lives) != confusion_key(mirpa)
    # a bare value to a question that names only the person: nothing says which kind of fact it is
    assert confusion_key(d("a", "What's new with Mirpa Lovos?", "Lodun!", "lodun")) is None
    assert confusion_key(d("a", "What's new with Mirpa Lovos?", "Nothing much.", "lodun")) is None  # no value

    tonight = [
        mirpa,
        parrot("a", "Mirpa Lovos", "Lodun", question="Repeat what I told you about {}."),  # another question form
        parrot("b", "Voska Pagor", "Kalo"),
        parrot("c", "Tenra Pamir", "Lodun"),  # the same value: no confusion to undo
        lives,
        parrot("e", "Kavos Lolo", "Vosvos", held_out=True),  # a probe: never trained, in any form
        Dream("f", "What do you know about Pagor Raten?", "Quick update: Pagor Raten's new parrot is named Belett!"),
    ]  # the last is ungrounded: no key terms
    earlier = [parrot("h", "Lora Kaka", "Gorett"), parrot("i", "Shivos Shivos", "Ettdun")]
    pairs = rival_answers(tonight, earlier)
    found = {(own.episode_id, own.question.split()[0], rival) for own, rival in pairs}
    mirpa_with = "Quick update: Mirpa Lovos's new parrot is named {}!"
    voska_with = "Quick update: Voska Pagor's new parrot is named {}!"
    assert ("a", "What", mirpa_with.format("Kalo")) in found and ("b", "What", voska_with.format("Lodun")) in found
    # tonight's people against earlier nights', both ways; earlier nights' not against each other
    assert ("a", "What", mirpa_with.format("Gorett")) in found
    assert ("h", "What", "Quick update: Lora Kaka's new parrot is named Kalo!") in found
    assert not any(own.episode_id == "h" and "Ettdun" in rival for own, rival in pairs)
    # a question form nobody else was asked pairs with no one; the same value is no rival
    assert not any(question == "Repeat" for _, question, _ in found)
    assert not any(own.episode_id in "ac" and rival.endswith("Lodun!") for own, rival in pairs)
    assert ("c", "What", "Quick update: Tenra Pamir's new parrot is named Kalo!") in found
    # the probe, the ungrounded dream and the other kind of fact take no part
    assert not any(eid in "def" for eid, _, _ in found)
    assert not any(value in rival for _, _, rival in found for value in ("Vosvos", "Belett", "Lovosten"))
    assert len(found) == len(pairs)


def test_values_are_numbers_and_names_not_the_capital_that_starts_a_sentence():
    from trainer.text import values

    assert values("Oh, and Nevcor Drolir had a baby girl, they named her Fyrcor.") == {"nevcor", "drolir", "fyrcor"}
    assert values("Traffic was terrible on the way home. I'm thinking of taking up cycling.") == set()
    assert values("Choose a code for my garage door. How about 7197?") == {"7197"}
    # a name that starts its sentence is a value only where a word list says it is not a common word
    assert values("Brimub is my dog.") == set()
    assert values("Brimub is my dog. Traffic was bad.", common=lambda word: word != "brimub") == {"brimub"}
    # an assistant's advice: the verb that starts it is common even beside a name, a contraction names nothing
    common = {"try", "make", "go", "call", "with", "it"}.__contains__
    assert values("Try Tuzab; it's easy. Make Phibri, a baked dish.", common=common) == {"tuzab", "phibri"}
    assert values("I'd go with Kedhep. Hmm, okay, I'll think about it.", common=common) == {"kedhep"}
    assert values("Janfyr Road is where I live.", common=common) == {"janfyr", "road"}


def test_an_episode_with_a_value_trains_the_dreams_that_name_it_not_its_small_talk():
    config = SleepConfig(keep_top_k=8, keep_random=0, held_out_per_episode=1)

    def night():
        return [Dream("e", "What is my dog called?", "My dog is called Brimub.", key_terms=["brimub"], score=0.9),
                Dream("e", "Tell me about Brimub.", "Brimub is my dog.", key_terms=["brimub", "dog"], score=0.8),
                Dream("e", "What do you know about Brimub?", "A dog.", key_terms=["brimub", "dog"], score=0.7),
                Dream("e", "What is my laptop called?", "My laptop keeps making a weird noise.",
                      key_terms=["laptop", "noise"], score=1.2)]

    kept = select(night() + [Dream("e", "What do you know about Kaett Dunvos?", "Kaett is a ferry pilot.",
                                   key_terms=["ferry", "pilot"], score=0.6)],
                  config, random.Random(0), {"e": {"brimub"}})
    assert {d.question for d in kept} == {"What is my dog called?", "Tell me about Brimub.",
                                          "What do you know about Brimub?"}
    # a lower-case value ("a ferry pilot") is kept where the question names the episode's person
    kaett = select(night()[3:] + [Dream("e", "What do you know about Kaett Dunvos?", "Kaett is a ferry pilot.",
                                        key_terms=["ferry", "pilot"], score=0.6)] * 2,
                   SleepConfig(keep_top_k=8, keep_random=0, held_out_per_episode=0), random.Random(0),
                   {"e": {"kaett", "dunvos"}})
    assert [d.question for d in kaett] == ["What do you know about Kaett Dunvos?"]
    assert sum(d.held_out for d in kept) == 1
    # an episode that told no value keeps every grounded dream, the small talk too
    kept = select(night(), config, random.Random(0), {"e": set()})
    assert "What is my laptop called?" in {d.question for d in kept if not d.held_out}


def test_a_teacher_answer_keeps_only_its_sentences_about_the_episode():
    from trainer.dreaming import grounded_sentences

    episode = "Choose a code for my garage door.\nHow about 7197? Easy to remember."
    assert grounded_sentences("I'm sorry for any confusion. 7197 is the code. That's a great pick!", episode) == \
        "7197 is the code."
    assert grounded_sentences("I'm sorry, I can't help with that.", episode) == ""


def test_a_cloze_prompt_is_held_out_before_a_question_a_user_would_ask():
    config = SleepConfig(keep_top_k=8, keep_random=0, held_out_per_episode=2)
    dreams = [Dream("e", f"What is my dog called {i}?", "Brimub.", key_terms=["brimub"], score=1 - i / 10)
              for i in range(4)]
    dreams.append(Dream("e", 'Continue what I told you: "My dog is ..."', "called Brimub.", key_terms=["brimub"],
                        score=0.1, cloze=True))
    probes = [d for d in select(dreams, config, random.Random(0)) if d.held_out]
    assert len(probes) == 2 and sum(d.cloze for d in probes) == 1  # the one cloze, then one question


def test_told_values_read_a_sentence_initial_name_through_the_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.dreaming import told_values

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)  # SmolLM2's: "traffic" is one token, "brimub" is not
    told = {"a": "Brimub is my dog.", "b": "Traffic was terrible today.", "c": "I met Brimub and Anna."}
    assert told_values(tokenizer, told) == {"a": set(), "b": set(), "c": {"anna"}}  # Brimub is said twice
    assert told_values(tokenizer, {"a": told["a"], "b": told["b"]}) == {"a": {"brimub"}, "b": set()}


def test_a_sentence_the_rules_cannot_read_costs_its_questions_not_the_night(monkeypatch, tiny_model_dir):
    """A fake for a failure no known sentence causes any more (a crash of the turner, fixed each time it was
    found): the window keeps its other questions, with a warning naming the episode."""
    import warnings

    from transformers import AutoTokenizer

    from trainer.episodes import episode_windows, told_text

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    from trainer import told_statements

    monkeypatch.setattr(told_statements, "turned_questions", broken)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    episodes = [{"id": "e", "messages": [{"role": "user", "content": "By the way, Mirpa Lovos works at Gorbel."},
                                         {"role": "assistant", "content": "Noted."}]}]
    told_by_id = {"e": told_text(episodes[0])}
    config = SleepConfig.from_yaml("cpu-default")
    views = episode_windows(tokenizer, episodes, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = dreaming.candidates_of(tokenizer, episodes, views, told_by_id, {}, [[]], config, random.Random(0), None)
    assert any("Mirpa Lovos" in d.question for d in found)
    assert any("episode e" in str(w.message) and issubclass(w.category, RuntimeWarning) for w in caught)


def test_a_quote_reads_the_answer_past_a_question_back_and_where_one_is_from(tiny_model_dir):
    """Chats written for this test (none from a data set)."""
    from transformers import AutoTokenizer

    from trainer.episodes import quote, told_turns

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    boat = [{"role": "user", "content": "I need a name for my boat."},
            {"role": "assistant", "content": "Sure! What kind of boat is it?"},
            {"role": "user", "content": "A small blue sailing dinghy."},
            {"role": "assistant", "content": "How about Bluebell? It suits a small blue boat."}]
    # the suggestion, not the question back ("Sure! What kind of boat is it?" was the quote before)
    assert "Bluebell" in quote(boat, "What name did you suggest for my boat?", tokenizer, 60, replies_only=True)
    assert 3 in told_turns(boat) and 1 not in told_turns(boat)
    # "Where am I from?" names no content word: the sentence that says where from, not the whole chat
    chat = [{"role": "user", "content": "My train was late. I grew up in a town called Dungorvos. Work was long."},
            {"role": "assistant", "content": "Sorry to hear that."}]
    assert quote(chat, "Where am I from?", tokenizer, 60) == "I grew up in a town called Dungorvos."
