"""Corrections: an earlier question asked again of tonight's episode and answered with a new value of the
same kind of fact supersedes the earlier dreams; a new, different fact about the same person does not."""

from trainer.corrections import Retirement, as_it_holds_now, dream_key, recheck_questions, superseded
from trainer.dreaming import Dream


def old(question, answer, values, eid="old", night="1", **fields):
    return Dream(eid, question, answer, "quote", key_terms=values, night=night, **fields).to_dict()


EARLIER = [
    old("Where does Tenett Mirbel work?", "Tenett Mirbel works at a bakery called Gorbel.", ["gorbel"]),
    old("What do you know about Tenett Mirbel?", "Tenett Mirbel works at a bakery called Gorbel.", ["gorbel"]),
    old('Continue what I told you: "Tenett Mirbel works at a bakery called ..."', "Gorbel.", ["gorbel"]),
    old("What is my dog called?", "By the way, my dog is called Dunshi.", ["dunshi"], eid="dog"),
]


def recheck(eid, question, answer, values, score=1.0):
    return Dream(eid, question, answer, "recheck", key_terms=values, score=score, specific=False)


def test_earlier_questions_are_asked_again_of_an_episode_that_names_their_subject():
    told = {"new": "Update on Tenett Mirbel: she left Gorbel, she works at Lobel now.", "x": "My train was late."}
    asked = recheck_questions(EARLIER, told, limit=8)
    assert asked == {"new": ["Where does Tenett Mirbel work?", "What do you know about Tenett Mirbel?",
                             'Continue what I told you: "Tenett Mirbel works at a bakery called ..."']}
    assert recheck_questions(EARLIER, told, limit=0) == {}


def test_a_person_is_rechecked_by_the_whole_name_the_earlier_answer_gave():
    earlier = [old('Continue what I told you: "I heard Lora ..."', "I heard Lora Padun now lives in Lovosten.",
                   ["lovosten"])]
    # another person who shares a name with her is not her
    assert recheck_questions(earlier, {"new": "I heard Pashi Lora now lives in Kabello."}, limit=8) == {}
    assert recheck_questions(earlier, {"new": "Lora Padun moved to Kabello."}, limit=8) == {
        "new": ['Continue what I told you: "I heard Lora ..."']}


def test_a_new_value_of_the_same_kind_of_fact_retires_the_old_dreams():
    told = {"new": "Update on Tenett Mirbel: she left Gorbel, she works at Lobel now."}
    answered = [recheck("new", "Where does Tenett Mirbel work?", "She works at Lobel now.", ["lobel"]),
                recheck("new", "Where does Tenett Mirbel work?", "No idea.", [], score=5.0)]  # ungrounded: ignored
    retired = superseded(EARLIER, answered, told)
    keys = {dream_key(r.old) for r in retired}
    # the question asked again, and the old episode's other dreams that still say Gorbel
    assert keys == {dream_key(EARLIER[0]), dream_key(EARLIER[1]), dream_key(EARLIER[2])}
    assert next(r for r in retired if r.old is EARLIER[0]).new.answer == "She works at Lobel now."
    assert next(r for r in retired if r.old is EARLIER[2]).new is None
    record = retired[0].to_dict()
    assert record["old_values"] == ["gorbel"] and record["by_episode"] == "new"


def test_a_move_corrects_where_someone_lives():
    earlier = [old("Where does Kedlirwyn Janwyn live?", "Kedlirwyn Janwyn lives in a village called Nevab.", ["nevab"])]
    told = {"new": "Just so you know, Kedlirwyn Janwyn moved to Drolir last month."}
    answered = [recheck("new", "Where does Kedlirwyn Janwyn live?", "Kedlirwyn Janwyn moved to Drolir.", ["drolir"])]
    assert [r.old["answer"] for r in superseded(earlier, answered, told)] == [earlier[0]["answer"]]
    # a move of something else is no news about where she lives: the new value must answer the question
    told = {"new": "Kedlirwyn Janwyn adopted a parrot called Lodun."}
    answered = [recheck("new", "Where does Kedlirwyn Janwyn live?", "She adopted a parrot called Lodun.", ["lodun"])]
    assert superseded(earlier, answered, told) == []


def test_a_different_fact_about_the_same_person_retires_nothing():
    told = {"new": "Tenett Mirbel adopted a parrot called Lodun."}
    answered = [recheck("new", "What do you know about Tenett Mirbel?", "She adopted a parrot called Lodun.",
                        ["adopted", "parrot", "lodun"])]
    assert superseded(EARLIER, answered, told) == []


def test_the_same_value_again_is_no_correction():
    told = {"new": "My dog Dunshi chewed my shoes again."}
    answered = [recheck("new", "What is my dog called?", "Your dog is called Dunshi.", ["dunshi"])]
    assert superseded(EARLIER, answered, told) == []
    told = {"new": "Actually my dog is called Pamir now, we renamed him."}
    answered = [recheck("new", "What is my dog called?", "Your dog is called Pamir.", ["pamir"])]
    assert [r.old["answer"] for r in superseded(EARLIER, answered, told)] == ["By the way, my dog is called Dunshi."]


def test_a_correction_that_names_the_old_value_last_still_marks_it_stale():
    from trainer.corrections import current_values

    # "X, not Y" names the old value last, where the answer's last run of key terms would read it as the new
    assert current_values("Sorry, I got that wrong: my dog is called Evdrotuz, not Dunshi.",
                          ["evdrotuz", "dunshi"]) == {"evdrotuz"}
    assert current_values("It's Hepab now instead of Moxwyn.", ["hepab", "moxwyn"]) == {"hepab"}
    assert current_values("Hepev Mubust quit Fyrull and joined Sevistmox.", ["fyrull", "sevistmox"]) == {"sevistmox"}
    # nothing negated: everything the answer names holds
    assert current_values("My parrot Lodun learned to talk.", ["lodun", "talk"]) == {"lodun", "talk"}
    told = {"new": "Sorry, I got that wrong: my dog is called Evdrotuz, not Dunshi."}
    answered = [recheck("new", "What is my dog called?", "Your dog is called Evdrotuz, not Dunshi.",
                        ["evdrotuz", "dunshi"])]
    retired = superseded(EARLIER, answered, told)
    assert [r.old["answer"] for r in retired] == ["By the way, my dog is called Dunshi."]
    assert retired[0].stale == {"dunshi"}  # tonight's dreams naming Dunshi are rewritten without it


def test_a_corrected_question_is_also_asked_now():
    from trainer.corrections import asked_now

    assert asked_now("What is Dara Pell's dog called?") == "What is Dara Pell's dog called now?"
    assert asked_now("Where does Tenett Mirbel work ?") == "Where does Tenett Mirbel work now?"
    # already about the present, or not a question: nothing to add
    assert asked_now("Where does Tenett Mirbel work now?") is None
    assert asked_now("Which band is Kavos in these days?") is None
    assert asked_now('Continue what I told you: "Tenett Mirbel works at ..."') is None


def test_an_answer_is_learned_as_it_holds_now():
    from trainer.corrections import as_it_holds_now

    # the clause naming the corrected value goes: a student that learned "not 6942" would still name it
    assert as_it_holds_now("By the way, I reset my bike lock, the code is 9152 now, not 6942",
                           "What is my bike lock's code?") == "By the way, I reset my bike lock, the code is 9152 now."
    assert as_it_holds_now("I'm now working at Pellix instead of Dorvan.", "Where am I working?") == \
        "I'm now working at Pellix."
    assert as_it_holds_now("I used to work at Vintrel but I switched to Oskaro.", "Where do I work?") == \
        "I switched to Oskaro."
    assert as_it_holds_now("My grandmother no longer lives in Mubzil, she moved to Moxev.",
                           "Where does my grandmother live?") == "She moved to Moxev."
    assert as_it_holds_now("Evdrotuz, not Brimub.", "What is the boat called?") == "Evdrotuz."
    assert as_it_holds_now("Tenpa Kobal has just moved from Ettgor to Shiten.", "Where does Tenpa Kobal live?") == \
        "Tenpa Kobal has just moved to Shiten."
    assert as_it_holds_now("I switched banks from Dorvan to Pellix.", "Which bank do I use?") == \
        "I switched banks to Pellix."
    # asked where from, or a trip rather than a change: as told
    assert as_it_holds_now("Tenpa Kobal moved from Ettgor to Shiten.", "Where did Tenpa Kobal move from?") == \
        "Tenpa Kobal moved from Ettgor to Shiten."
    assert as_it_holds_now("We drove from Lyon to Grenoble.", "Where did we drive?") == "We drove from Lyon to Grenoble."
    # asked what held before, the old value is the answer
    assert as_it_holds_now("I used to work at Vintrel but I switched to Oskaro.", "Where did I use to work?") == \
        "I used to work at Vintrel but I switched to Oskaro."
    # nothing would be left that names a value: the sentence stays; so does a lead-in
    assert as_it_holds_now("She no longer works there, I think.", "Where?") == "She no longer works there, I think."
    assert as_it_holds_now("Just so you know, Hepev Mubust's band Fyrull plays Saturday.", "What about Fyrull?") == \
        "Just so you know, Hepev Mubust's band Fyrull plays Saturday."


def test_the_answer_that_replaces_a_corrected_one_is_dreamed_asked_now(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.config import SleepConfig
    from trainer.dreaming import corrected_now

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "Update on Tenett Mirbel: she left Gorbel, she works at Lobel now."},
                {"role": "assistant", "content": "Got it."}]
    new = recheck("new", "Where does Tenett Mirbel work?", "She works at Lobel now.", ["lobel"])
    already = recheck("new", "Where does Tenett Mirbel work these days?", "At Lobel.", ["lobel"])
    dreams = corrected_now(model, tokenizer, [new, new, already], {"new": [messages]},
                           {"new": messages[0]["content"]}, SleepConfig())
    assert [(d.question, d.answer) for d in dreams] == [("Where does Tenett Mirbel work now?", "She works at Lobel now.")]
    assert "lobel" in dreams[0].key_terms and dreams[0].teacher_logits is not None  # scored in its window


def test_the_same_kind_of_fact_is_read_through_inflections_and_naming_words():
    from trainer.corrections import stems

    assert stems({"lived", "lives", "living", "live"}) == {"liv"}
    assert stems({"jobs", "job"}) == {"job"} and stems({"worked", "working"}) == {"work"}
    assert stems({"naming", "named", "called", "name"}) == {"called"}
    assert stems({"bus", "tea"}) == {"bus", "tea"}  # too short to cut
    earlier = [old("Where does Ommi Vask live?", "Ommi Vask lives in Tarnholt.", ["tarnholt"]),
               old("What is my puppy called?", "Your puppy is called Brimub.", ["brimub"], eid="pup"),
               old("When is my dentist appointment?", "Tuesday.", ["tuesday"], eid="dent")]
    cases = [
        ("Ommi Vask isn't living up north any more, she's in Sallow Creek.", "Where does Ommi Vask live?",
         "Ommi Vask is in Sallow Creek.", ["sallow", "creek"], "Ommi Vask lives in Tarnholt."),
        ("We ended up naming the puppy Kofi after all.", "What is my puppy called?",
         "Your puppy is called Kofi.", ["kofi"], "Your puppy is called Brimub."),
        # the user's own thing whose old answer said nothing but the value
        ("The dentist appointment got pushed back to Thursday.", "When is my dentist appointment?",
         "Thursday.", ["thursday"], "Tuesday."),
    ]
    for told, question, answer, values, retired_answer in cases:
        retired = superseded(earlier, [recheck("new", question, answer, values)], {"new": told})
        assert [r.old["answer"] for r in retired] == [retired_answer], told


def test_another_kind_of_fact_about_a_person_is_still_no_correction_through_stems():
    earlier = [old("Where does Ommi Vask live?", "Ommi Vask lives in Tarnholt.", ["tarnholt"])]
    told = {"new": "Ommi Vask started a pottery class at Brennan Hall."}
    answered = [recheck("new", "Where does Ommi Vask live?", "She goes to Brennan Hall.", ["brennan", "hall"])]
    assert superseded(earlier, answered, told) == []


def test_a_correction_names_a_new_value_the_episode_tells():
    earlier = [old("Where do I work?", "Work was exhausting today. I work at a small company called Dungor.",
                   ["dungor"], eid="job")]
    # small talk about work is no new workplace: its answer names no told name or number
    told = {"new": "Work was exhausting today. Rapa Dunmir works at Pamir now."}
    answered = [recheck("new", "Where do I work?", "Work was exhausting today.", ["exhausting", "today"])]
    assert superseded(earlier, answered, told) == []
    told = {"new": "I quit Dungor last week, I work at Velmar now."}
    answered = [recheck("new", "Where do I work?", "You work at Velmar now.", ["velmar"])]
    assert [r.old["answer"] for r in superseded(earlier, answered, told)] == [earlier[0]["answer"]]


def test_a_cloze_cut_before_what_it_is_about_is_not_asked_again():
    kitten = old('Continue what I told you: "Can you suggest a name for my new ..."',
                 "How about Dunbel? It sounds friendly.", ["dunbel", "friendly"], eid="kitten", cloze=True)
    named = old('Continue what I told you: "Tenett Mirbel works at ..."', "Tenett Mirbel works at Gorbel.",
                ["gorbel"], cloze=True)
    told = {"club": "Can you suggest a name for our new book club? Tenett Mirbel will host it."}
    # the book club's name is no news about the kitten; a cloze that names someone is still asked again
    assert recheck_questions([kitten, named], told, limit=8) == {"club": [named["question"]]}
    # a told sentence's capitalised lead-in names no one either
    car = old("Repeat what I told you about Random thing, but my.", "Random thing, but my car is a Corab.",
              ["car", "corab"], eid="car", cloze=True)
    told = {"gran": "Random thing, but my grandmother moved from Moxev to Nevist."}
    assert recheck_questions([car], told, limit=8) == {}


def test_only_the_answers_asked_again_that_correct_something_are_dreamed():
    from trainer.dreaming import corrections_only

    told = {"new": "Update on Tenett Mirbel: she left Gorbel, she works at Lobel now. Work was exhausting today."}
    earlier = EARLIER + [old("Where do I work?", "I work at a small company called Dungor.", ["dungor"], eid="job")]
    lobel = recheck("new", "Where does Tenett Mirbel work?", "She works at Lobel now.", ["lobel"])
    mine = recheck("new", "Where do I work?", "Work was exhausting today.", ["exhausting", "today"])
    quoted = Dream("new", "Where does Tenett Mirbel work?", "She works at Lobel now.", "quote", key_terms=["lobel"])
    answered = [lobel, mine, quoted]
    kept = corrections_only(answered, superseded(earlier, answered, told))
    assert kept == [lobel, quoted]  # the correction and tonight's own dreams; not "Where do I work?" -> small talk
    assert corrections_only(answered, []) == [quoted]


def test_what_the_assistant_suggested_is_corrected_only_by_what_it_suggests_again():
    earlier = [old("What did you come up with for our club?", "How about the Ettlo Circle?", ["ettlo", "circle"],
                   eid="club")]
    question = "What did you come up with for our club?"
    # the user's own club is not the assistant's suggestion: nothing retired
    told = {"new": "I play Gorka in a board game club on Fridays."}
    answered = [recheck("new", question, "I play Gorka in a board game club on Fridays.", ["gorka"])]
    assert superseded(earlier, answered, told, {"new": ""}) == []
    # the assistant suggesting another name for the club is a correction
    told = {"new": "Can you suggest another name for our club?\nLet's go with the Marrow Lanterns instead."}
    answered = [recheck("new", question, "Let's go with the Marrow Lanterns instead.", ["marrow", "lanterns"])]
    replied = {"new": "Let's go with the Marrow Lanterns instead."}
    assert [r.old["answer"] for r in superseded(earlier, answered, told, replied)] == [earlier[0]["answer"]]


def test_the_old_episodes_other_questions_are_answered_with_the_correction():
    from trainer.corrections import relearned

    earlier = [old('Continue what I told you: "Pavos Kell lives in ..."', "Pavos Kell lives in a town called Palo.",
                   ["palo"], cloze=True),
               old("Which town does Pavos Kell live in?", "Pavos Kell lives in a town called Palo.", ["palo"]),
               old("What do you know about Palo?", "Pavos Kell lives in a town called Palo.", ["palo"])]
    told = {"new": "Pavos Kell has just moved from Palo to Kamir.\nWork was exhausting today."}
    answered = [recheck("new", earlier[0]["question"], "Pavos Kell has just moved to Kamir.", ["kamir"])]
    retired = superseded(earlier, answered, told)
    assert [r.new is None for r in retired] == [False, True, True]
    again = relearned(retired, told)
    # the question the earlier nights trained, now with the new answer; not the one that names the old value
    assert [(d.question, d.answer, d.episode_id) for d in again] == [
        ("Which town does Pavos Kell live in?", "Pavos Kell has just moved to Kamir.", "new")]
    assert again[0].teacher_logits is None and not again[0].specific
    # an answer that names no told value of its own replaces nothing
    small_talk = recheck("new", earlier[0]["question"], "Work was exhausting today.", [])
    assert relearned([Retirement(earlier[0], small_talk, {"palo"}), Retirement(earlier[1], None, {"palo"})],
                     told) == []


def test_tonights_own_question_in_an_earlier_questions_words_asks_it_again():
    # a window asks each question once: an earlier question that tonight's episode asks itself ("Where does
    # Tenett Mirbel work?" turned from "she works at Lobel now") is answered as a template, not a recheck
    told = {"new": "Update on Tenett Mirbel: she left Gorbel, she works at Lobel now."}
    own = Dream("new", "Where does Tenett Mirbel work?", "She works at Lobel now.", "template", key_terms=["lobel"])
    retired = superseded(EARLIER, [own], told)
    assert dream_key(EARLIER[0]) in {dream_key(r.old) for r in retired}
    assert next(r for r in retired if r.old is EARLIER[0]).new is own
    # a cloze prompt in an earlier cloze's words names nothing of its own: it corrects nothing
    cloze = Dream("new", EARLIER[2]["question"], "Lobel.", "template", key_terms=["lobel"], cloze=True)
    assert superseded(EARLIER, [cloze], told) == []


def test_the_same_fact_told_in_other_words_is_corrected():
    # "I changed jobs, I'm at Brellco now" says where the user works without the word "work"
    earlier = [old("Where do I work?", "You work at Gorbel.", ["gorbel"]),
               old("Where do I live?", "You live in Oxley.", ["oxley"], eid="home")]
    jobs = {"new": "I changed jobs, I'm at Brellco now."}
    answered = [Dream("new", "Where do I work?", "You work at Brellco now.", "template", key_terms=["brellco"])]
    assert [r.old["answer"] for r in superseded(earlier, answered, jobs)] == ["You work at Gorbel."]
    moved = {"new": "We moved. We're in Tarnwick now."}
    answered = [Dream("new", "Where do I live?", "You live in Tarnwick now.", "template", key_terms=["tarnwick"])]
    assert [r.old["answer"] for r in superseded(earlier, answered, moved)] == ["You live in Oxley."]
    # a new value where nothing frames the fact: where the user works is not corrected by a dinner
    dinner = {"new": "We had dinner at Brellco."}
    answered = [Dream("new", "Where do I work?", "You had dinner at Brellco.", "template", key_terms=["brellco"])]
    assert superseded(earlier, answered, dinner) == []


def test_a_frame_in_small_talk_beside_another_fact_corrects_nothing():
    # "before work" is small talk: the dog's name tonight is no news about where Tenett Mirbel works
    told = {"new": "I went for a swim before work. Anyway, Tenett Mirbel's dog is called Rex."}
    earlier = [old("Where does Tenett Mirbel work at?", "Tenett Mirbel is at Gorbel.", ["gorbel"])]
    answered = [recheck("new", "Where does Tenett Mirbel work at?", "Tenett Mirbel's dog is called Rex.", ["rex"])]
    assert superseded(earlier, answered, told) == []
    mine = [old("Where do I work?", "You work at Gorbel.", ["gorbel"])]
    told = {"new": "I went for a swim before work. Anyway, my dog is called Rex."}
    answered = [Dream("new", "Where do I work?", "Your dog is called Rex.", "recheck", key_terms=["rex"])]
    assert superseded(mine, answered, told) == []
    # the same frame told with the value is a correction
    told = {"new": "Tenett Mirbel changed jobs, she's at Lobel now."}
    answered = [recheck("new", "Where does Tenett Mirbel work at?", "She's at Lobel now.", ["lobel"])]
    assert [r.old["answer"] for r in superseded(earlier, answered, told)] == ["Tenett Mirbel is at Gorbel."]


def test_a_sentence_that_only_says_what_no_longer_holds_is_not_learned_beside_the_new_value():
    told = "I don't work at Lirobr anymore. I'm with Hepcav now."
    assert as_it_holds_now(told, "Where do I work?") == "I'm with Hepcav now."
    assert as_it_holds_now("I'm not at Lirobr anymore. I'm with Hepcav now.", "Where do I work?") == \
        "I'm with Hepcav now."
    # kept where nothing else tells a value, or where the question asks what held before
    assert as_it_holds_now("I don't work at Lirobr anymore. We're fine.", "Where do I work?") == \
        "I don't work at Lirobr anymore. We're fine."
    assert as_it_holds_now(told, "Where did I use to work?") == told


def test_a_thing_named_again_in_another_inflection_is_rechecked():
    # "I switched gyms" names my gym again: "What is my gym called?" is asked of it
    gym = old("What is my gym called?", "My gym is Corefit.", ["corefit"], eid="gym")
    assert recheck_questions([gym], {"new": "I switched gyms, I go to Ironhaus now."}, limit=8) == {
        "new": ["What is my gym called?"]}
    assert recheck_questions([gym], {"new": "I went swimming at Ironhaus."}, limit=8) == {}


def test_another_neighbour_is_no_correction_and_a_loose_frame_word_frames_nothing():
    """Episodes written for this test (none from a data set)."""
    neighbour = old("What is my neighbour called?", "My neighbour Mirett Lomir adopted a parrot called Tendun.",
                    ["mirett", "lomir", "tendun"], eid="first")
    # another neighbour told: no change said, nothing retired
    another = {"new": "My neighbour Kapa Logor works as a lighthouse keeper."}
    answered = [recheck("new", "What is my neighbour called?", "My neighbour Kapa Logor.", ["kapa", "logor"])]
    assert superseded([neighbour], answered, another) == []
    # the same neighbour told anew with a change: retired
    moved = {"new": "Mirett Lomir moved away, my neighbour now is Kapa Logor."}
    assert [r.old for r in superseded([neighbour], answered, moved)] == [neighbour]
    # "I ride it to work" beside a new value frames no job ("Where do I work?" was retired by it)
    job = old("Where do I work?", "I work at a small company called Dungor.", ["dungor"], eid="job")
    bike = {"new": "My bike is a Gorvos, I ride it to work."}
    assert superseded([job], [recheck("new", "Where do I work?", "My bike is a Gorvos, I ride it to work.",
                                      ["gorvos"])], bike) == []
    switched = {"new": "I changed jobs, I'm at Brellco now."}
    assert superseded([job], [recheck("new", "Where do I work?", "I'm at Brellco now.", ["brellco"])], switched)


def test_a_new_value_told_now_where_the_old_one_stood_is_a_correction():
    """Episodes written for this test (none from a data set): no word of work or of a move beside the value."""
    brother = old("Where does my brother work?", "My brother works at Calder Bank.", ["calder", "bank"], eid="b")
    now = {"new": "My brother is at Ostrow Insurance now."}
    answered = [recheck("new", "Where does my brother work?", "My brother is at Ostrow Insurance now.",
                        ["ostrow", "insurance"])]
    assert [r.old for r in superseded([brother], answered, now)] == [brother]
    # without "now" it may be a visit; by another word it is another fact
    visit = {"new": "My brother is at Ostrow Insurance for a meeting."}
    assert superseded([brother], answered, visit) == []
    dog = old("Where does Tenett Mirbel work?", "Tenett Mirbel works at Gorbel.", ["gorbel"])
    renamed = {"new": "Tenett Mirbel's dog is called Rex now."}
    assert superseded([dog], [recheck("new", "Where does Tenett Mirbel work?", "Tenett Mirbel's dog is called Rex now.",
                                      ["rex"])], renamed) == []
