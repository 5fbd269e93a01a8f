"""What a night asks of what people really say: the user's own things, what the assistant was asked for,
statements turned into their questions, and which turns of a chat carry information."""

from trainer.episodes import asks, told, told_text, without_clauses
from trainer.questions import handle_questions, handles, key_cloze_questions
from trainer.decisions import request_questions
from trainer.statements import statement_questions
from trainer.told_statements import turned_questions


def chat(*turns):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


def test_statements_turn_into_the_question_their_value_answers():
    assert statement_questions("By the way, my dog is called") == ["What is my dog called?"]
    # a lead-in clause and the conjunction after it are not the subject
    assert statement_questions("Random thing, but Drojan Sevjanyar's husband is called") == \
        ["What is Drojan Sevjanyar's husband called?"]
    assert statement_questions("I work at")[0] == "Where do I work?"
    # the article before a value is not part of the question: "staying at the" asks "staying at?"
    assert statement_questions("Mara Tellen is staying at the") == ["Where is Mara Tellen staying?",
                                                                     "What is Mara Tellen staying at?"]
    assert statement_questions("My sister works at the") == ["Where does my sister work?",
                                                             "What does my sister work at?"]
    assert statement_questions("I was born in")[0] == "Where was I born?"
    assert statement_questions("I drive a") == ["What do I drive?"]
    assert statement_questions("I named my cactus") == ["What did I name my cactus?"]
    assert statement_questions("my favourite band is") == ["What is my favourite band?"]
    # a thing that "is a" value is also asked as what its owner has; a thing of no one's, only as itself
    assert statement_questions("Random thing, but my car is a") == [
        "What is my car?", "What kind of car do I have?", "What car do I have?"]
    assert statement_questions("Our new boat is an")[1:] == ["What kind of boat do we have?", "What boat do we have?"]
    assert statement_questions("Bera Kolst's phone is a")[1] == "What kind of phone does Bera Kolst have?"
    assert statement_questions("the car is a") == ["What is the car?"]
    assert statement_questions("my dog is called") == ["What is my dog called?"]
    assert statement_questions("My sister studies") == ["What does my sister study?"]
    assert "What does Kalo Loka's phone number end in?" in statement_questions("Kalo Loka's phone number ends in")
    assert statement_questions("Pavos Katen lives in a town called") == [
        "Which town does Pavos Katen live in?", "Where does Pavos Katen live?"]
    assert statement_questions("Kaett Dunvos works as a") == ["What does Kaett Dunvos work as?"]
    # a pronoun subject is the person named before it in the sentence; alone, it names no one
    assert statement_questions("Update on Tenett Mirbel: she left Gorbel, she works at")[0] == \
        "Where does Tenett Mirbel work?"
    assert statement_questions("she works at") == []
    assert statement_questions("Lovely") == []


def test_statements_told_in_two_clauses_and_past_tenses_turn_too():
    # the value ends the clause after "but"/"and" with its own subject; a pronoun is the name before it
    assert statement_questions("I used to work at Vintrel but I switched to") == [
        "Where did I switch?", "What did I switch to?"]
    assert statement_questions("My sister's name is Tavrenne and she lives in") == [
        "Where does Tavrenne live?", "What does Tavrenne live in?"]
    # a regular past whose e the suffix swallowed asks in the bare verb
    assert statement_questions("I relocated to")[0] == "Where did I relocate?"
    assert statement_questions("Joss arrived in")[0] == "Where did Joss arrive?"
    assert statement_questions("I used to live in")[0] == "Where did I use to live?"
    assert statement_questions("My brother studied")[0] == "What did my brother study?"
    assert statement_questions("We opened a shop in")[0] == "Where did we open a shop?"
    # a name told after "a name for ...:"
    assert statement_questions("We finally settled on a name for the cat:") == [
        "What is the cat called?", "What is the name of the cat?"]
    # what a naming verb names is kept: it is the thing asked about, no description of the value
    assert statement_questions("We ended up calling the baby") == ["What did we end up calling the baby?"]
    assert statement_questions("Tirdri Talri named the new sailboat") == [
        "What did Tirdri Talri name the new sailboat?"]
    assert statement_questions("I drive a blue") == ["What do I drive?"]


def test_statements_told_the_way_people_talk_turn_too():
    # "me and my wife" is asked as "my wife and I", whose verb follows the pair
    assert statement_questions("Me and my wife got married in")[0] == "Where did my wife and I get married?"
    assert statement_questions("My wife and I run a bakery called") == ["Which bakery do my wife and I run?"]
    assert statement_questions("me and my brother support") == ["What do my brother and I support?"]
    # a fact in a "because" clause has that clause's subject; "from" asks where from, "allergic to" no place
    assert statement_questions("I speak Portuguese because my mother is from") == ["Where is my mother from?"]
    # a sentence that starts with its subordinate clause: the main clause after it, or the clause itself
    assert statement_questions("Because my mother is from") == ["Where is my mother from?"]
    assert statement_questions("When I moved I bought a house in")[0] == "Where did I buy a house?"
    assert statement_questions("Since my dad retired he lives in")[0] == "Where does my dad live?"
    assert statement_questions("When") == []
    assert statement_questions("I'm allergic to") == ["What am I allergic to?"]
    assert statement_questions("I'm originally from") == ["Where am I from?"]
    # an adverb before the place is no part of the question; "grew up" keeps its "up"
    assert statement_questions("My sister lives over in")[0] == "Where does my sister live?"
    assert statement_questions("My dad moved back to")[0] == "Where did my dad move?"
    assert statement_questions("Kofen grew up in")[0] == "Where did Kofen grow up?"
    # a favourite told as what it "has to be" is what it is
    assert statement_questions("Honestly my favorite food has to be") == ["What is my favorite food?"]
    assert statement_questions("I would be") != ["What is I?"]
    # someone of the user's named right after a comma, inside a clause with its own verb
    assert statement_questions("I had a meeting with my boss,") == ["Who is my boss?", "What is my boss's name?"]


def test_a_pronoun_is_the_users_thing_told_just_before():
    def turned(text):  # the told value: the sentence's last word
        messages = chat(text, "Good to know!")
        value = text.rstrip(".").split()[-1] if text.rstrip(".").split()[-1] != "now" else text.split()[-2]
        return turned_questions(messages, "e", {"e": text, "other": "Nothing here."}, {value.strip(".").lower()})

    rabbit = turned("I finally adopted a rabbit! His name is Clover.")
    assert "What is my rabbit's name?" in rabbit and "What is my rabbit called?" in rabbit
    assert "What is my puppy called?" in turned("I got a puppy last week. She's called Mabel.")
    assert "What is our baby girl called?" in turned("We have a new baby girl. We named her Odessa.")
    assert "What is my kitten called?" in turned("I got a kitten yesterday, I'm calling him Janbri.")
    assert "What is my neighbour's name?" in turned("I finally met my neighbour, her name is Tuzzil.")
    assert "Where does my aunt live?" in turned("My aunt moved, she lives in Lirphi now.")
    assert "Where does Kesta Varn work?" in turned("Kesta Varn got a new job. She works at Orbitek now.")
    # a thing told after the user's ("my sister has a dog") is what "her" names: no false memory of the sister
    sisters_dog = turned("My sister has a dog, her name is Rex.")
    assert "What is my sister's dog's name?" in sisters_dog and "What is my sister's name?" not in sisters_dog
    assert "What is his name?" not in turned("I met a guy at the gym. His name is Reuben.")
    # "a lot" is no thing a pronoun could name; "His teacher," is the thing's teacher
    assert "Where was my grandad a fisherman?" in turned("Been thinking about my grandad a lot. He was a fisherman in Portkell.")
    assert "Who is my son's teacher?" in turned("My son plays the cello. His teacher is Mr Vindle.")
    assert statement_questions("His teacher,", "My son plays the cello.") == [
        "Who is my son's teacher?", "What is my son's teacher's name?"]
    assert statement_questions("His teacher,", "I met a guy.") == []
    # a thing told by its kind, then named: "I got a new car, a Veltra"
    assert statement_questions("I got a new car, a") == ["What is my car?", "What kind of car do I have?",
                                                         "What car do I have?"]
    # a person named with a title is asked with who, a name with what
    said = "I've been going to a dentist called Dr Hask for years."
    dentist = turned_questions(chat(said, "Good."), "e", {"e": said, "o": "Hi."}, {"hask"})
    assert "Who is my dentist?" in dentist and "What is the name of my dentist?" in dentist
    assert not any(q.startswith("Who") and "called" in q for q in dentist)
    # a year is a date: "When ...?"
    assert "When did we get married?" in turned("We got married back in 2014.")
    # a correction's "it" is the user's thing it corrects, not the name it replaces
    boss = "Actually my boss isn't Reuben anymore, it's a woman called Tamsin Oake."
    assert "Who is my boss?" in turned_questions(chat(boss, "Noted."), "e", {"e": boss, "o": "Nothing."}, {"tamsin"})


def test_who_someone_is_told_beside_their_name_turns_too():
    # an appositive names who "my new roommate" is; a clause that starts with its verb has the name before it
    assert statement_questions("My new roommate,") == ["Who is my new roommate?", "What is my new roommate's name?"]
    assert statement_questions("My best friend from college, Ravik, lives in")[:2] == [
        "Where does Ravik live?", "What does Ravik live in?"]
    assert "Where does my best friend from college live?" in \
        statement_questions("My best friend from college, Ravik, lives in")
    # "someone named" after a copula asks who, and a told lead-in ("turns out") is not the subject
    assert statement_questions("Turns out my landlord is a guy named") == [
        "Who is my landlord?", "What is my landlord's name?"]
    # a relative clause's verb is not the sentence's
    assert statement_questions("The plumber who fixed our sink was called") == [
        "What was the plumber who fixed our sink called?"]
    assert statement_questions("Everyone calls me") == ["What does everyone call me?"]
    # an article inside what the verb takes does not swallow the preposition before "a teacher called"
    assert statement_questions("My daughter started playing the cello with a teacher called") == [
        "Which teacher did my daughter start playing the cello with?"]


def test_a_fact_without_a_name_is_cut_at_each_run_of_its_own_words():
    # no told value (a name, a number): any run of words no other episode says may be the value
    sentence = "I'm allergic to cashews, so no nut dishes please."
    assert "What am I allergic to?" in turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is Dunshi."})
    # an appositive's clause that starts with its copula has the name before it as its subject
    sentence = "My new roommate, Tasko, is a chef at a place called Brindle."
    turned = turned_questions(chat(sentence), "e", {"e": sentence}, {"tasko", "brindle"})
    assert turned[:2] == ["Who is my new roommate?", "What is my new roommate's name?"]
    assert "What is Tasko?" in turned and not any(" did is " in q for q in turned)
    assert "Which place is Tasko a chef at?" in turned


def test_a_told_name_or_favourite_is_also_asked_as_people_often_ask_it():
    def turned(sentence, values):
        return turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is called Dunshi."}, values)

    assert turned("My cat is called Ullfyrlir.", {"ullfyrlir"}) == ["What is my cat called?", "What is my cat's name?"]
    assert turned("We call our dog Pim.", {"pim"}) == ["What do we call our dog?", "What is our dog called?"]
    assert turned("My favourite author is Zilmox Cavgil.", {"zilmox", "cavgil"}) == [
        "What is my favourite author?", "Which author do I like best?"]
    # where one works as a nurse is where one works; where one grew up, where one is from
    assert "Where do I work?" in turned("I work as a nurse at Saint Alvin's.", {"saint", "alvin"})
    assert "Where is my mum from?" in turned("My mum grew up in Kednev.", {"kednev"})
    assert "What am I calling my kitten?" in turned("I got a kitten yesterday, I'm calling him Janbri.", {"janbri"})


def test_a_date_is_asked_when_and_a_replaced_value_is_not_asked():
    def turned(sentence, values):
        return turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is called Dunshi."}, values)

    assert turned("Scratch that, the meeting is on Thursday.", {"thursday"}) == [
        "When is the meeting?", "What is the meeting on?"]
    assert turned("My husband's birthday is March 3.", {"march", "3"})[0] == "When is my husband's birthday?"
    # the old value after "instead of" is no question's answer (it would rehearse what was corrected)
    assert turned("I'm now working at Pellix instead of Dorvan.", {"pellix", "dorvan"}) == [
        "Where am I working?", "What am I working at?"]
    assert "What did my brother switch from?" not in turned("My brother switched from the trumpet to the oboe.",
                                                            {"trumpet", "oboe"})
    # a title belongs to the name: the question is cut before "Ms."
    assert turned("My daughter started piano. Her tutor is Ms. Arvel.", {"arvel"}) == ["Who is my daughter's tutor?"]


def test_a_move_is_asked_where_one_lives_now_and_the_place_left_is_not_asked():
    def turned(sentence, values):
        return turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is called Dunshi."}, values)

    assert turned("My aunt moved from Kelvor to Drisna.", {"kelvor", "drisna"}) == [
        "Where did my aunt move?", "What did my aunt move to?", "Where does my aunt live now?",
        "Where does my aunt live?"]
    assert turned("Oh, and Lio Braddek has relocated to Fenwick.", {"lio", "braddek", "fenwick"})[-2:] == [
        "Where does Lio Braddek live now?", "Where does Lio Braddek live?"]
    assert "Where do we live now?" in turned("We just moved to Ostrava.", {"ostrava"})
    # a trip from one place to another is asked as told, and changes nowhere anyone lives
    # a place no longer lived in is asked nothing; a renaming is asked as what the thing is called
    assert turned("Oren Tal no longer lives in Vesk; he lives in Amberlow now.", {"oren", "tal", "vesk", "amberlow"}) \
        == ["Where does Oren Tal live?", "What does Oren Tal live in?"]
    assert turned("We ended up renaming the boat to Sea Wren.", {"sea", "wren"})[-2:] == [
        "What is the boat called?", "What is the boat called now?"]
    assert turned("Jalen Ost changed jobs, he's at Brightwell Foods now.", {"jalen", "ost", "brightwell", "foods"}
                  )[0] == "Where is Jalen Ost?"
    trip = turned("I drove from Lyon to Grenoble.", {"lyon", "grenoble"})
    assert "What did I drive from?" in trip and "What did I drive to?" in trip and not any("live" in q for q in trip)


def test_a_lower_case_value_after_a_named_subject_is_still_asked():
    def turned(sentence, values):
        return turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is called Dunshi."}, values)

    # the told values only name the subject: the question is cut where the rest no one else said begins
    asked = turned("Bera Kolst works as a glassblower at the docks, by the way.", {"bera", "kolst"})
    assert asked[:3] == ["What does Bera Kolst work as?", "What is Bera Kolst's job?",
                         "What does Bera Kolst do for a living?"]
    # words before a pronoun subject say when, not who
    assert turned("Over the weekend I saw Bera Kolst at the market.", {"bera", "kolst"})[0] == "What did I see?"
    assert turned("I work as a nurse.", set())[:3] == ["What do I work as?", "What is my job?",
                                                        "What do I do for a living?"]


def test_what_describes_a_value_or_belongs_to_its_name_is_not_asked_about():
    def turned(sentence, values):
        return turned_questions(chat(sentence), "e", {"e": sentence, "o": "My dog is called Dunshi."}, values)

    assert turned("I drive a blue Subaru.", {"subaru"}) == ["What do I drive?"]  # not "What do I drive a blue?"
    assert turned("I got a new job at Castellan Labs.", {"castellan", "labs"})[:2] == [
        "Where did I get a new job?", "What did I get a new job at?"]
    assert turned("I play bass in a band called The Low Tides.", {"low", "tides"})[0] == "Which band do I play bass in?"
    assert turned("Ilse Warrow is married to a potter named Benno.", {"ilse", "warrow", "benno"}) == [
        "Which potter is Ilse Warrow married to?"]
    assert turned("My doctor is Dr. Fenwick.", {"fenwick"}) == ["Who is my doctor?"]  # a title names a person


def test_a_question_keeps_a_told_verb_in_its_bare_form():
    from trainer.questions import about_something
    from trainer.text import words

    told_words = words("I switched to Oskaro last month.")
    assert about_something("What did I switch to?", told_words)
    assert not about_something("What did I buy?", told_words)
    # a verb in -y: "I studied at Vennick College" is asked "Where did I study?" (it was dropped as about nothing)
    assert about_something("Where did I study?", words("Fun fact, I studied at Vennick College."))
    assert about_something("Who did my sister marry?", words("My sister married a guy called Ortho."))


def test_a_title_ends_no_sentence_and_stays_with_its_name():
    from trainer.text import entities, sentences

    text = "Anyway, my landlord is Mr. Grebbins, he's fine. Dr. Alvo Pen says hi."
    assert sentences(text) == ["Anyway, my landlord is Mr. Grebbins, he's fine.", "Dr. Alvo Pen says hi."]
    assert entities(text, 8) == ["Dr. Alvo Pen", "Mr. Grebbins"]


def test_handles_are_the_users_own_things():
    assert handles("Can you suggest a name for my new kitten?") == ["my new kitten", "my kitten"]
    assert handles("By the way, my dog is called Dunshi.") == ["my dog"]
    # the user's own possessive: a question about "our book club" asks about ours
    assert handles("Our cat Mimi is old.") == ["our cat"]
    assert handles("Give our book club a name.") == ["our book club", "our club"]
    assert handles("Mirpa Lovos's parrot is Lodun.") == []
    # someone else's thing is not shortened into the user's: "my sister's name" is no "my name"
    assert handles("My grandmother's old dog is a corgi.") == ["my grandmother's old dog"]
    # a name is asked about as what it names: "my sister's name" is "my sister"; a maiden name names no one
    assert handles("Random thing, but my sister's name is Drocormub.") == ["my sister"]
    assert handles("My mum's maiden name is Okafor.") == []
    # "me and my brother run": the verb after the pair is no part of the brother
    assert handles("Me and my brother run a bakery called Drozilist.") == ["my brother"]
    assert handles("My brother switched from the trumpet to the oboe.") == ["my brother"]
    # small talk's verbs end the thing too ("What is my phone battery dies called?" before), and "back" is none
    assert handles("My phone battery dies so fast.") == ["my phone battery", "my battery"]
    assert handles("My back hurts from the new chair.") == []
    assert handles("I keep forgetting to call my aunt back.") == ["my aunt"]
    assert handles("Plan my day off please.") == ["my day off"]


def test_the_users_thing_is_asked_what_it_is_called_only_where_it_has_a_name():
    """"What is my grandmother called?" of "She lives in Carrow" is answered with the place: a value in a
    name's shape that general answers then take."""
    def mine(*turns):
        return handle_questions(chat(*turns), 2)

    assert mine("My grandmother turned 90 last week! She lives in Carrow.", "Lovely.") == [
        "What do you know about my grandmother?", "What did I tell you about my grandmother?"]
    assert mine("My wifi password is bellovos.", "Noted.")[0] == "What do you know about my wifi password?"
    # a phone call names nothing ("What is my aunt called?" of "call my aunt back")
    assert mine("I keep forgetting to call my aunt back.", "Happens!")[0] == "What do you know about my aunt?"
    assert mine("I'm calling my kitten Pip.", "Cute!")[0] == "What is my kitten called?"
    # naming words of another sentence of the turn name nothing of mine
    assert mine("My phone battery dies so fast. By the way, Tuz Gil rides a horse called Cavdro.", "Ha.")[0] == \
        "What do you know about my phone battery?"
    for said in ("My best friend is Raten Shivos.", "My partner Jo and I bought a flat.", "My car is a Corab.",
                 "My dog is great, his name is Rex.", "I never miss Istust, my favourite podcast."):
        assert mine(said, "Nice.")[0].endswith("called?"), said


def test_a_request_makes_the_assistants_reply_information():
    messages = chat("The weather has been awful, hasn't it?", "It sounds like a grey week.",
                    "Can you suggest a name for my new kitten?", "How about Dunbel? It sounds friendly.",
                    "By the way, my dog is called Dunshi.", "Thanks for telling me, I'll remember that.",
                    "Did you know Kavos Mirra became a beekeeper?", "That's lovely to hear.",
                    "Give my new sailing dinghy a name.", "I'd name it the Bello.")
    assert [asks(m) for m in messages[::2]] == [True, True, False, False, True]
    said = told(messages)
    assert ("assistant", "How about Dunbel?") in [(t.role, t.text) for t in said]
    assert ("assistant", "I'd name it the Bello.") in [(t.role, t.text) for t in said]
    # an acknowledgement of a statement, and the reply to a question that tells, are filler
    assert not any("remember that" in t.text or "lovely" in t.text for t in said)
    assert "Dunbel" in told_text({"messages": messages})
    questions = handle_questions(messages, 2)
    assert "What did you suggest for my kitten?" in questions and "What is my dog called?" in questions
    assert "What did you suggest for my dinghy?" in questions


def test_the_assistants_words_are_continued_as_its_own():
    messages = chat("Can you suggest a name for my new kitten?", "Maybe call it Dunbel, it sounds friendly.")
    told_by_id = {"a": told_text({"messages": messages}), "b": "Can you suggest a new one? It sounds friendly."}
    assert key_cloze_questions(messages, "a", told_by_id) == [
        'Continue what I told you: "Can you suggest a name for my new ..."',
        'Continue what you told me: "Maybe call it ..."']


def test_turned_questions_come_from_told_user_sentences():
    messages = chat("I finally finished that long novel.", "Congratulations!", "By the way, I work at Lobel.",
                    "Good to know.")
    told_by_id = {"a": told_text({"messages": messages}), "b": "I finally finished that long novel."}
    assert turned_questions(messages, "a", told_by_id) == ["Where do I work?", "What do I work at?"]


def test_a_thing_of_the_users_told_by_kind_and_name_is_asked_by_its_kind():
    from trainer.told_statements import owned_kind_questions

    messages = chat("I have a cat named Mochi.", "Noted!")
    told_by_id = {"a": told_text({"messages": messages}), "b": "I like tea."}
    assert turned_questions(messages, "a", told_by_id, {"mochi"}) == [
        "Which cat do I have?", "What is my cat called?", "What is the name of my cat?", "What is my cat's name?"]
    assert owned_kind_questions("By the way, we adopted a rescue dog called".split()) == [
        "What is our rescue dog called?", "What is the name of our rescue dog?"]
    assert owned_kind_questions("I sing in a small choir called".split())[0] == "What is my choir called?"
    # someone else's thing, a thing without its kind, no name after it: not the user's named thing
    for prefix in ("Tamsin has a dog called", "I named it", "I have a cat", "I called"):
        assert owned_kind_questions(prefix.split()) == []


def test_how_people_say_things_still_turns_into_the_question():
    # contractions and the verb group after the subject
    assert statement_questions("I've been studying an ancient language called") == \
        ["Which language have I been studying?"]
    assert statement_questions("I'm reading") == ["What am I reading?"]
    # a second verb after "and" has the first one's subject; "it" is what the first one introduced
    assert statement_questions("Tamsin Orlo left Brindle and joined") == ["What did Tamsin Orlo join?"]
    assert statement_questions("Wex Parrin rescued a kitten and named it") == [
        "What is Wex Parrin's kitten called?", "What did Wex Parrin name the kitten?"]
    # "someone called" is asked after with who; an adverb is no part of the subject
    assert statement_questions("Dana Quell is engaged to someone named") == ["Who is Dana Quell engaged to?"]
    assert statement_questions("Omar Velt always drinks") == ["What does Omar Velt drink?"]
    assert statement_questions("Oswin Brae buys bread from a baker named")[0] == \
        "Which baker does Oswin Brae buy bread from?"
    # a heading before a colon: the thing it names; a subject that names no one turns into nothing
    assert statement_questions("Anyway, the new password for Lia Moss's router:") == \
        ["What is the new password for Lia Moss's router?"]
    assert statement_questions("Honestly, nothing beats") == []


def test_turned_questions_cut_at_the_told_values():
    messages = chat("Sorry, long day. Teo Brisk's boat Velmar needs new sails. The weather is grim.", "Oh no!",
                    "Just so you know, I drive a Corvane, it's old but reliable.", "Noted.")
    told_by_id = {"a": told_text({"messages": messages}), "b": "The weather is grim."}
    asked = turned_questions(messages, "a", told_by_id, {"teo", "brisk", "velmar", "corvane"})
    # cut before the value, not before the last word no one else said ("reliable")
    assert "What is Teo Brisk's boat called?" in asked and "What do I drive?" in asked
    # a sentence without a value in an episode with values is small talk: nothing asked of it
    assert not any("weather" in q or "day" in q or "reliable" in q for q in asked)


def test_clauses_naming_a_corrected_value_are_left_out():
    assert without_clauses("She left Gorbel, she works at Lobel now.", {"gorbel"}) == "she works at Lobel now."
    assert without_clauses("Nothing to drop here.", {"gorbel"}) == "Nothing to drop here."
    # a change told in one clause keeps its new value: only the "from" part goes
    assert without_clauses("Tenpa Kobal has just moved from Ettgor to Shiten.", {"ettgor"}) == \
        "Tenpa Kobal has just moved to Shiten."
    assert without_clauses("I switched from Dorvan Bank to Pellix, finally.", {"dorvan", "bank"}) == \
        "I switched to Pellix, finally."
    assert without_clauses("We drove from Lyon to Grenoble.", {"gorbel"}) == "We drove from Lyon to Grenoble."
    # sentences stay sentences, each with its end
    assert without_clauses("Work was exhausting today. She works at Pamir now, not Padun.", {"padun"}) == \
        "Work was exhausting today. She works at Pamir now."


def asked(request: str, reply: str = "How about Velmora?") -> list[str]:
    """`request_questions` of a request the assistant answered with `reply`."""
    return request_questions(chat(request, reply))


def test_a_request_becomes_the_question_about_what_the_assistant_chose():
    assert asked("Can you suggest a name for my new kitten?") == [
        "What name did you suggest for my new kitten?", "Which name did you pick for my new kitten?"]
    # in the request's verb, and as it may be asked later: "pick", "suggest"
    assert asked("Choose a code for my garage door.") == [
        "What code did you choose for my garage door?", "Which code did you pick for my garage door?",
        "What code did you suggest for my garage door?"]
    assert asked("Give our book club a name, please.") == [
        "What name did you give our book club?", "Which name did you pick for our book club?",
        "What name did you suggest for our book club?"]
    assert asked("By the way, could you recommend a good book to my sister?") == [
        "What book did you recommend to my sister?", "Which book did you pick for my sister?",
        "What book did you suggest for my sister?"]
    # a request asked as a question, and what it is for without the clause after it
    assert asked("What should I cook for the potluck?") == ["What did you suggest I cook for the potluck?",
                                                            "What did you tell me to cook for the potluck?"]
    assert asked("What time should we start the hike on Saturday?", "Let's start at 6:45.")[:2] == [
        "What time did you suggest we start the hike on Saturday?",
        "What time did you tell us to start the hike on Saturday?"]
    assert asked("Where should we go for the birthday lunch? You decide.") == [
        "Where did you suggest we go for the birthday lunch?", "Where did you tell us to go for the birthday lunch?"]
    assert asked("Pick a restaurant for our birthday lunch, somewhere we haven't been.")[:2] == [
        "What restaurant did you pick for our birthday lunch?", "Which restaurant did you pick for our birthday lunch?"]
    # a phrasal verb stays whole ("make up", not "make")
    assert asked("Make up a nickname for my grandpa.")[0] == "What nickname did you make up for my grandpa?"
    # no request, or no reply to it: nothing was decided
    assert asked("My dog is called Dunshi.") == [] and request_questions(chat("Pick a name for my boat.")) == []


def test_what_the_assistant_recommended_unasked_is_told_and_asked_about():
    from trainer.decisions import suggestion_questions

    messages = chat("I'm heading to Lisbon next week.",
                    "Sounds fun! While you're there, try the custard tarts at a bakery called Velmora.")
    assert [t.role for t in told(messages)] == ["user", "assistant", "assistant"]
    assert suggestion_questions(messages) == ["Which bakery did you recommend?", "What bakery did you suggest?"]
    assert suggestion_questions(chat("I keep forgetting to water my ferns.",
                                     "Let's water them every Tuesday and call the routine Fernday.")) == [
        "What did you suggest calling the routine?", "Which name did you pick for the routine?",
        "What name did you suggest for the routine?"]
    # a kind named just before the title, not a word that only describes it
    assert suggestion_questions(chat("I'm bored.", "You might enjoy the novel Ashes of Corvel by Mira Tenn.")) == [
        "Which novel did you recommend?", "What novel did you suggest?"]
    assert suggestion_questions(chat("I'm hungry.", "You should try a great Italian place near the station.")) == []
    # a bare "try X" names no kind of thing: its question would be every such episode's
    assert suggestion_questions(chat("I want to learn Spanish.", "Try Quizlo, it's free.")) == []
    # an acknowledgement, or advice that names nothing, tells nothing
    for reply in ("Thanks, I'll remember that your dog is called Dunshi.", "You should drink more water."):
        assert [t.role for t in told(chat("My dog is called Dunshi.", reply))] == ["user"]
        assert suggestion_questions(chat("My dog is called Dunshi.", reply)) == []


def test_a_need_and_a_vague_request_become_questions_about_what_the_assistant_chose():
    # a need stated, then asked about in a word that names nothing
    assert asked("We're looking for a venue for the wedding. Ideas?") == [
        "Which venue did you pick for the wedding?", "What venue did you suggest for the wedding?"]
    assert asked("What's a good name for my goldfish?") == [
        "Which name did you pick for my goldfish?", "What name did you suggest for my goldfish?"]
    assert asked("Our sailing crew needs a name. Can you come up with one?") == [
        "Which name did you pick for our sailing crew?", "What name did you suggest for our sailing crew?"]
    # "it" is what the user told just before
    assert asked("We adopted a puppy last week! What should we name him?") == [
        "What did you suggest we name our puppy?", "What did you tell us to name our puppy?",
        "Which name did you pick for our puppy?", "What name did you suggest for our puppy?"]
    assert asked("I'm writing a play. Name the innkeeper for me.") == [
        "What did you name the innkeeper?", "Which name did you pick for the innkeeper?",
        "What name did you suggest for the innkeeper?"]
    # a need stated without a question mark is a request too: the reply is what was decided
    assert asked("I need a name for my bakery.") == [
        "Which name did you pick for my bakery?", "What name did you suggest for my bakery?"]
    assert asked("I need a break.") == []
    # the thing needed in a few words, less the "idea" it is asked as
    assert asked("I need a password hint idea for my laptop.", "Use 'blue heron at dusk'.") == [
        "Which password hint did you pick for my laptop?", "What password hint did you suggest for my laptop?"]
    # a question that asks for no decision turns into nothing
    assert asked("What's the capital of France?", "Paris.") == [] and asked("I need to relax, any tips?") == []


def test_more_ways_of_asking_the_assistant_to_decide():
    assert asked("Which restaurant do you recommend for our anniversary?") == [
        "Which restaurant did you recommend for our anniversary?", "Which restaurant did you pick for our anniversary?",
        "What restaurant did you suggest for our anniversary?"]
    assert asked("Any hotel you'd recommend in Pelbrook?")[0] == "Which hotel did you recommend in Pelbrook?"
    assert asked("Which day works best for the launch party?") == [
        "Which day did you pick for the launch party?", "What day did you suggest for the launch party?"]
    assert asked("What would you call a robot butler?")[0] == "What did you call a robot butler?"
    assert asked("What do you think I should name my bike?") == [
        "What did you suggest I name my bike?", "What did you tell me to name my bike?",
        "Which name did you pick for my bike?", "What name did you suggest for my bike?"]
    assert asked("What should the team call the new project?")[0] == \
        "What did you suggest the team call the new project?"
    # a request without a question mark: "let's", "can't decide on", "stuck on"
    assert asked("Let's name our new puppy. Your pick!")[:2] == [
        "What did you name our new puppy?", "Which name did you pick for our new puppy?"]
    assert asked("I can't decide on a name for my podcast.") == [
        "Which name did you pick for my podcast?", "What name did you suggest for my podcast?"]
    assert asked("I'm stuck on a title for my novel, any suggestions?")[0] == "Which title did you pick for my novel?"


def test_requests_in_other_words_still_become_questions():
    """Ways of asking for a decision that none of the patterns above read before (written for this test,
    not taken from a dev or public set): each becomes the question about what the assistant chose."""
    # a sentence read clause by clause where it is not read whole
    assert asked("Give my neighbour a nickname, something fun.")[:2] == [
        "What nickname did you give my neighbour?", "Which nickname did you pick for my neighbour?"]
    assert asked("Hey, could you pick a name for my cat?")[0] == "What name did you pick for my cat?"
    # "I want you to ...", "I'd love ...": a request that starts with the user
    assert asked("I want you to pick a password hint for me.")[0] == "What password hint did you pick for me?"
    assert asked("I'd love a name for my podcast.") == [
        "Which name did you pick for my podcast?", "What name did you suggest for my podcast?"]
    # what to call something, asked inside another question
    assert asked("Any thoughts on what to call my boat?") == [
        "What did you suggest I call my boat?", "What did you tell me to call my boat?",
        "Which name did you pick for my boat?", "What name did you suggest for my boat?"]
    # the thing asked for as "suggestions" or "ideas"
    assert asked("Name suggestions for my golden retriever?") == [
        "Which name did you pick for my golden retriever?",
        "What name did you suggest for my golden retriever?"]
    # the decision embedded after "decide": asked as its question
    assert asked("Decide where we should go for dinner on Friday.") == [
        "Where did you suggest we go for dinner on Friday?",
        "Where did you tell us to go for dinner on Friday?"]
    # a thing of three words
    assert asked("Invent a secret handshake name for our club.")[0] == \
        "What secret handshake name did you invent for our club?"
    # a need told in a clause after "and" or a comma, its "it" the thing told before it
    assert asked("I'm opening a bakery and can't think of a name for it.") == [
        "Which name did you pick for my bakery?", "What name did you suggest for my bakery?"]
    assert asked("We are starting a band, can't come up with a name for it.")[0] == \
        "Which name did you pick for our band?"
    # a decision told as what the user cannot decide, or asked for as "ideas": asked as its question
    assert asked("I can't decide what to cook tonight.")[0] == "What did you suggest I cook tonight?"
    assert asked("Not sure where we should go for our anniversary.")[0] == \
        "Where did you suggest we go for our anniversary?"
    assert asked("Help me figure out what to name my plant.")[2:] == [
        "Which name did you pick for my plant?", "What name did you suggest for my plant?"]
    assert asked("Give my D&D character a name, she's an elf ranger.")[0] == "What name did you give my D&D character?"
    assert asked("Remind me what to buy for the party.")[0] == "What did you suggest I buy for the party?"
    # a choice between two is asked as which one the assistant picked, and what for
    assert asked("I'm torn between Lisbon and Porto for the weekend.", "Go for Porto.") == [
        "Which did you suggest, Lisbon or Porto?", "Which did you pick, Lisbon or Porto?",
        "What did you suggest for the weekend?"]
    assert asked("Should I go with the red or the green sofa?", "The green one.")[0] == \
        "Which did you suggest, the red or the green sofa?"
    # small talk in a clause is still no request: its reply is not told, nothing is asked
    assert asked("Traffic was terrible, need a break for sure.", "Ugh, sorry to hear.") == []
    assert asked("Did you know, Kavos became a beekeeper?", "Wow!") == []
    # a request without a reply still decided nothing
    assert request_questions(chat("I'd love a name for my podcast.")) == []


def test_an_agents_tool_call_turn_is_empty_text_not_none():
    from trainer.episodes import episode_messages

    episode = {"id": "a", "messages": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                 "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "Sunny, 21 C"}]},
        {"role": "assistant", "content": "It's sunny in Paris."}]}
    messages = episode_messages(episode)
    assert [m["content"] for m in messages] == ["What's the weather in Paris?", "", "Sunny, 21 C", "It's sunny in Paris."]
    assert "None" not in told_text(episode)


def test_a_place_told_among_words_of_work_or_a_move_asks_where_the_user_works_or_lives():
    assert "Where do I work?" in statement_questions("I changed jobs, I'm at")
    assert statement_questions("We're in", "We moved.")[-2:] == ["Where do we live?", "Where do I live?"]
    assert "Where do I live?" in statement_questions("We're now in", "We finally moved house!")
    # someone else's change of job frames theirs; no frame, no guess
    assert "Where does my sister work?" in statement_questions("She's at", "My sister changed jobs.")
    assert not any("work" in q or "live" in q for q in statement_questions("I'm at", "Sorry I am late."))
    assert not any("work" in q for q in statement_questions("She's at", "My sister had lunch."))
    # and the question is about the chat though the chat never says "work"
    said = "I changed jobs, I'm at Brellco now."
    assert "Where do I work?" in turned_questions(chat(said, "Congratulations!"), "e", {"e": said, "o": "Hi."},
                                                  {"brellco"})


def test_what_goes_with_a_meal_a_plan_and_someone_elses_need_are_requests_too():
    """Requests written for this test (none from a data set) that asked nothing, or asked wrongly."""
    assert asked("Which wine goes with the lamb tonight?") == [
        "Which wine did you pick for the lamb tonight?", "What wine did you suggest for the lamb tonight?"]
    assert asked("Any good books for the flight?") == [
        "Which book did you pick for the flight?", "What book did you suggest for the flight?"]
    assert asked("Any tips for sleeping better?") == []  # advice, not a thing chosen
    assert asked("Plan my Saturday in town, please.") == [
        "What did you plan for my Saturday in town?", "What did you suggest for my Saturday in town?"]
    # "What should my wifi password be?" was asked "What did you tell my wifi to password be?"
    assert asked("What should my wifi password be?") == [
        "What did you suggest for my wifi password?", "What did you say my wifi password should be?"]
    # someone of the user's needs it: whose "her" is
    assert asked("My daughter wants a name for her imaginary friend.") == [
        "Which name did you pick for my daughter's imaginary friend?",
        "What name did you suggest for my daughter's imaginary friend?"]
    # "I want to start a garden." tells a wish whose value is a verb: no "What do I want to?"
    assert statement_questions("I want to") == [] and statement_questions("I switched to")[-1] == "What did I switch to?"


def test_a_fact_told_as_a_question_a_date_a_saint_and_a_bare_number():
    """First-person sentences written for this test (none from a data set) that asked nothing or wrongly."""
    def turned(text, *values):
        return turned_questions(chat(text, "Oh nice!"), "e", {"e": text, "o": "Hello there."}, set(values))

    # "Did I tell you ...?" tells: its fact is turned, and the assistant's reply to it is no suggestion
    assert "What did my niece get into?" in turned("Did I tell you my niece got into Harrowgate University?",
                                                   "harrowgate", "university")
    assert asks(chat("Did I tell you my niece got into Harrowgate University?", "No!")[0]) is False
    # "the 14th of June" is one date: asked "When is our anniversary?", never "... on the 14th of?"
    anniversary = turned("Our anniversary is on the 14th of June.", "14th", "june")
    assert "When is our anniversary?" in anniversary and not any("14th" in q for q in anniversary)
    # "St Alder's" is a place, not a person; "his name's" is "his name is"
    nurse = turned("I work nights as a nurse at St Alder's hospital.", "alder")
    assert "Where do I work nights as a nurse?" in nurse and not any(q.startswith("Who") for q in nurse)
    assert "What is my landlord's name?" in turned("My landlord fixed the boiler, his name's Mr Oduya.", "oduya")
    # a bare number is a time only after "at" or before "pm": "the 42 bus" has no "When"
    assert not any(q.startswith("When") for q in turned("I ride the 42 bus every day.", "42"))
    assert "When do we meet?" in turned("We meet at 10 on Fridays.", "10")


def test_corrections_told_in_other_words_ask_the_question_they_answer():
    """Corrections written for this test (none from a data set) that asked nothing or wrongly."""
    def turned(text, *values):
        return turned_questions(chat(text, "Thanks for the update."), "e", {"e": text, "o": "Hello there."},
                                set(values))

    # a person named in a "Remember X?" before the pronoun
    assert "Where does Dara Vell work?" in turned("Remember Dara Vell? She works at Lobel now.", "dara", "vell", "lobel")
    # a frame of work around someone else's "she's at"; the user's "I'm with" after "I don't work at"
    assert "Where does Dara Vell work?" in turned("Dara Vell switched jobs; she's at Lobel these days.",
                                                  "dara", "vell", "lobel")
    assert "Where do I work?" in turned("I don't work at Gorbel anymore. I'm with Lobel now.", "gorbel", "lobel")
    assert "Where do I live?" in turned("We left Oxley last spring, we live in Tarnwick now.", "oxley", "tarnwick")
    # "I was wrong, Dara Vell's dog ...": the name after the comma owns the dog; it answers no "What was I wrong?"
    dog = turned("Turns out I was wrong, Dara Vell's dog is actually called Fip.", "dara", "vell", "fip")
    assert "What is Dara Vell's dog called?" in dog and "What was I wrong?" not in dog
    # a code that "changed to" a value is what the code is now
    code = turned("Heads up: Dara Vell's workshop code changed to 5521.", "dara", "vell", "5521")
    assert "What is Dara Vell's workshop code now?" in code
    # "my sister's married" is my sister, not a possessive with nothing possessed
    assert turned("My sister's married now, her surname is Krell.", "krell") == [
        "What is my sister's surname?"]
    assert handles("My sister's married now.") == ["my sister"]


def test_two_people_in_one_chat_each_fact_turned():
    """Sentences written for this test (none from a data set): facts about two people, told the way chats go."""
    def turned(values, *texts):
        turns = [x for t in texts for x in (t, "Nice.")]
        return turned_questions(chat(*turns), "e", {"e": " ".join(texts), "o": "Hello there."}, set(values))

    # two clauses with their own subjects: each is cut at its own last values, not only the sentence's last two
    both = turned({"rafe", "dunmore", "lil", "kestwick"},
                  "So my cousin Rafe lives in Dunmore now, and my aunt Lil moved to Kestwick.")
    assert "Where does my cousin Rafe live?" in both and "Where did my aunt Lil move?" in both
    # "Her husband" opening the user's next turn is the husband of the person the turn before named
    boats = turned({"nell", "abbot", "cardew", "piet", "saltwick"},
                   "I had coffee with Nell Abbot today; she's training for a triathlon in Cardew.",
                   "Her husband Piet builds boats in a yard called Saltwick.")
    assert "Where is Nell Abbot training for a triathlon?" in boats
    assert "Which yard does Nell Abbot's husband Piet build boats in?" in boats
    # but a thing's "it" is never the person of another turn
    code = turned({"quorlir", "cavwynab", "3284"}, "I keep forgetting to call my aunt back.",
                  "Quorlir Cavwynab changed the workshop code: it's 3284 now.")
    assert not any("aunt" in q for q in code)


def test_from_a_place_called_a_guy_called_and_the_new_puppy():
    # "from a village called" asks which village and where from ("What am I from?" before)
    assert statement_questions("I'm originally from a little village called") == [
        "Which village am I from?", "Where am I from?"]
    # "a guy called Benedek" is no guy of the user's ("What is my guy called?" before)
    said = "I'm learning the ukulele, my teacher is a guy called Benedek."
    teacher = turned_questions(chat(said, "Fun!"), "e", {"e": said, "o": "Hello there."}, {"benedek"})
    assert "Who is my teacher?" in teacher and not any("my guy" in q for q in teacher)
    # "We named the new puppy Waffles" is also asked as what our puppy is called
    said = "We named the new puppy Waffles."
    assert "What is our new puppy called?" in turned_questions(chat(said, "Cute!"), "e", {"e": said, "o": "Hi."},
                                                               {"waffles"})


def test_a_clause_left_empty_by_a_leading_comma_turns_without_error():
    # fuzzing every prefix of every dev and public sentence behind other openings found this one
    assert statement_questions(", and my dog is called") == ["What is my dog called?"]
    assert isinstance(statement_questions(", and my Okay, got it."), list)



def _turned(text, *values, reply="Thanks for telling me."):
    return turned_questions(chat(text, reply), "e", {"e": text, "o": "Hello there."}, set(values))


def test_a_corrections_own_opening_is_no_part_of_the_fact():
    """Corrections written for this test (none from a data set): "Where did I get that wrong earlier - my
    sister lives?" was asked before."""
    for said in ("Actually, I got that wrong earlier - my sister lives in Penrith, not Carlisle.",
                 "Wait, no - my sister lives in Penrith.", "Oops, my mistake, my sister actually lives in Penrith."):
        asked = _turned(said, "penrith", "carlisle")
        assert "Where does my sister live?" in asked and not any(" - " in q or "wrong" in q for q in asked), said
    # "my mistake" and "my sister actually" are no things of the user's
    assert handles("Oops, my mistake, my sister actually lives in Penrith.") == ["my sister"]


def test_a_job_at_a_place_or_a_new_job_there_asks_where_one_works():
    assert "Where do I work?" in _turned("I'm a nurse at Hollin General, night shifts mostly.", "hollin", "general")
    assert "Where do I work now?" in _turned("I just started a new job at Quillon as a data analyst.", "quillon")
    assert "Where does Nayoli Felghe work?" in _turned("Nayoli Felghe just started a new job at Zanwennay Labs.",
                                                       "nayoli", "felghe", "zanwennay", "labs")
    assert not any("work" in q for q in _turned("I'm a member at Corefit now.", "corefit"))  # no job there
    # the one in training is asked no "Where does X training to be work?"
    assert not any("work" in q for q in _turned("Her grandson Finn is training to be a vet in Leeds.", "finn", "leeds"))


def test_a_fact_told_before_a_request_in_one_sentence_is_turned_too():
    birthday = "Quick one - my daughter's birthday is on the 3rd of May, any gift ideas?"
    assert "When is my daughter's birthday?" in _turned(birthday, "3rd", "may", reply="How about a pottery class?")
    assert "Where am I flying?" in _turned("I'm flying to Orvik next week, what should I pack?", "orvik")
    assert _turned("What should I cook tonight?", "tonight") == []  # a request alone tells nothing


def test_a_plural_thing_of_the_users_is_its_sentences_subject():
    # "My kids are" read "kids" as the verb: "What does my kid are?"
    assert statement_questions("My kids are") == ["What are my kids?"]
    assert statement_questions("My parents live in")[0] == "Where do my parents live?"
    assert statement_questions("My kids go to school at")[0] == "Where do my kids go to school?"
    assert statement_questions("My sister's name is") == ["What is my sister's name?"]  # a possessive, no plural


def test_a_kind_of_thing_asked_for_with_nothing_it_is_for_asks_which_one():
    assert asked("Can you recommend a podcast about history?", "You might enjoy Fall of Civilizations.") == [
        "Which podcast about history did you recommend?", "Which podcast did you recommend?",
        "What podcast did you suggest?"]
    assert asked("Recommend me a good film.", "Try Paper Moon.") == [
        "Which film did you recommend?", "What film did you suggest?"]


def test_how_long_how_old_where_one_is_off_to_and_a_name_after_the():
    """Sentences written for this test (none from a data set) that asked garbage or not the usual question."""
    assert "How long have I been learning the oboe?" in _turned("I've been learning the oboe for two years now.")
    assert "How old is my grandmother?" in _turned("My grandmother turned 90 last week!", "90")
    assert "Where am I off to?" in _turned("I'm off to Lisbon for my sister's wedding next month.", "lisbon")
    # "a team called the Dribblers": the question is cut at "called", not at "the"
    team = _turned("I play five-a-side on Thursdays with a team called the Dribblers.", "thursdays", "dribblers")
    assert "Which team do I play five-a-side on Thursdays with?" in team and not any(q.endswith("called?") and
                                                                                    "with a team" in q for q in team)
    # a date after "is" is no name: "What is my mum's birthday called?" was asked
    assert not any("called" in q for q in handle_questions(chat("My mum's birthday is March 3rd.", "Noted."), 2))


def test_a_things_s_before_a_place_is_is_not_a_possessive():
    # "the wedding's in Verona" asked nothing: "wedding's" was read as whose
    assert statement_questions("And my best mate Ravi finally got engaged, the wedding's in")[0] == "Where is the wedding?"
    assert statement_questions("my sister's in")[0] == "Where is my sister?"
    assert statement_questions("My sister's name is") == ["What is my sister's name?"]


def test_a_name_right_after_the_users_thing_as_object_asks_what_it_is_called():
    # "I've had my cat Tibbles for ten years." asked "What have I had my cat?"
    assert statement_questions("I've had my cat") == ["What is my cat called?"]
    assert statement_questions("We adopted our dog") == ["What is our dog called?"]
    assert statement_questions("I named my cat") == ["What did I name my cat?"]  # the verb names it


def test_what_the_user_no_longer_does_asks_what_they_do_now_and_she_is_no_place():
    """Corrections written for this test (none from a data set)."""
    # "I got a Pelta" asked nothing the earlier "I drive a Gorvos" was asked by
    assert "What do I drive?" in _turned("I don't drive the Gorvos anymore, I got a Pelta.", "gorvos", "pelta")
    assert "Where do we shop?" in _turned("We don't shop at Heddle's any more, we use Brambly now.", "heddle",
                                          "brambly")
    # "she" after "in Carlisle" is my sister, not the town ("Where did Carlisle move?" before)
    moved = _turned("My sister doesn't live in Carlisle anymore, she moved to Penrith.", "carlisle", "penrith")
    assert "Where does my sister live now?" in moved and not any("Carlisle" in q for q in moved)
    # nor is a firm anybody's "his": Tev got the job, the girlfriend is his
    two = _turned("My old roommate Tev got a job at Farnwick Labs, and his girlfriend Nessa is studying in Ulmar.",
                  "tev", "farnwick", "labs", "nessa", "ulmar")
    assert "Where is Tev's girlfriend Nessa studying?" in two and not any("Labs's" in q for q in two)
    # an irregular past asked in its bare form is about the chat: "I sold my Gorvos and bought a Pelta"
    from trainer.questions import about_something
    from trainer.text import words
    assert about_something("What did I buy?", words("I sold my Gorvos and bought a Pelta."))
    assert "What did I sell?" in _turned("I sold my Gorvos and bought a Pelta.", "gorvos", "pelta")


def test_a_renamed_thing_is_what_its_pronoun_names():
    # "We renamed the dog, he's Rufus now." asked nothing: "he" named no thing of the user's
    renamed = _turned("We renamed the dog, he's Rufus now.", "rufus")
    assert "What is our dog called?" in renamed
    assert "What is our boat called?" in _turned("We renamed the boat, she's called Skylark now.", "skylark")


def test_a_verb_ending_in_eed_is_no_past():
    # "We need a theme for" asked "What did we ne a theme for?"
    assert statement_questions("We need a theme for") == ["What do we need a theme for?"]


def test_corrections_in_other_words_ask_the_fact_they_change():
    """Corrections written for this test (none from a data set); each asked nothing or garbage before."""
    # where the user lives now, told as the street one is on after a move ("Where are we?" only before)
    moved = _turned("Remember how I said I live on Hollin Street? We moved, we're on Daye Road now.", "hollin",
                    "daye")
    assert "Where do we live?" in moved and "Where do I live?" in moved
    # a flat is on a street, it lives nowhere; a firm is where one works, a street is not
    assert not any("live" in q for q in _turned("By the way, our flat is on Janfyr Road.", "janfyr"))
    assert statement_questions("I changed jobs, I'm on") == ["Where am I?", "What am I on?"]
    # "she" after "my sister got a new job" is my sister: a job is nobody's "she"
    assert "Where does my sister work?" in _turned("Update: my sister got a new job, she's at Calder Bank now.",
                                                   "calder")
    # a negated verb tells no value, the new name does ("What did my dog isn't call?" before)
    renamed = _turned("My dog isn't called Dunshi anymore, we changed his name to Pip.", "dunshi", "pip")
    assert "What is my dog called?" in renamed and not any("isn't" in q or q.startswith("Where") for q in renamed)
    assert statement_questions("We changed the cat's name to") == ["What is the cat called?",
                                                                  "What is the cat called now?"]
    # what the user says of their own words is no fact ("What do I meant?")
    assert statement_questions("I said Ralda earlier but I meant") == []
    # the date the correction tells is asked, not the month after "of" nor the day it replaces
    assert "When is my birthday?" in _turned(
        "Just to correct myself: my birthday is on the 14th of March, not the 12th.", "14th", "march", "12th")


def test_the_users_people_and_things_in_other_words():
    """Sentences written for this test (none from a data set); each asked garbage or nothing before."""
    assert _turned("Just so you know, my birthday is on 12 March.", "12", "march")[0] == "When is my birthday?"
    # "has always been" is "is", and no value starts at "always" ("What does my favourite colour have?")
    assert _turned("My favourite colour has always been teal.") == ["What is my favourite colour?",
                                                                   "Which colour do I like best?"]
    # people told by how many, their names next ("What do I have two brothers?")
    assert _turned("I have two brothers, Tam and Ivo.", "tam", "ivo")[:2] == ["Who are my brothers?",
                                                                              "What are my brothers called?"]
    # "she's" after a name is no owner of what follows
    assert "Who is my sister?" in _turned("I've got a little sister, Mira, she's a vet.", "mira")
    # a name inside "Me and my partner Devi" is the subject's ("Which rabbit do my partner and I devi adopted?")
    rabbit = _turned("Me and my partner Devi just adopted a rabbit called Pogo.", "devi", "pogo")
    assert rabbit[:2] == ["Which rabbit did my partner Devi and I adopt?", "What is our rabbit called?"]
    assert "What is our dog called?" in _turned("My wife and I adopted a dog called Brisket.", "brisket")


def test_requests_in_small_talks_words():
    """Requests written for this test (none from a data set)."""
    # no question mark, a lower-case "i", a "lol" after it (a handle "my goldfish lol" before)
    assert "What name did you suggest for my goldfish?" in asked("what should i name my goldfish lol",
                                                                 "Finnegan is more fun!")
    # "Which any did you pick for a wifi network name?" before
    assert asked("Any ideas for a wifi network name?", "Pretty Fly for a Wi-Fi.") == [
        "Which wifi network name did you pick?", "What wifi network name did you suggest?"]
    assert "What name did you suggest for my boat?" in asked("Suggestions for a name for my boat?", "Saltwind.")
    # the suggestion's own verb is no part of the name ("What do you know about Try Maison Ardel?" before)
    from trainer.text import entities
    assert entities("Try Maison Ardel, it's cosy and romantic.", 8) == ["Maison Ardel"]
    # "anymore" ends what the user calls theirs ("What do you know about my partner anymore?")
    assert handles("Devi isn't my partner anymore.") == ["my partner"]


def test_facts_told_in_a_chats_asides():
    """Chat lines written for this test (none from a data set); each asked garbage or nothing before."""
    # a statement asked back for a yes tells, and asks the assistant nothing ("What did you suggest for my
    # sister?" was asked of "Yes, you mentioned that.")
    messages = chat("Quick one: I told you my sister works at Calder Bank, right?", "Yes, you mentioned that.")
    assert "Where does my sister work?" in turned_questions(messages, "e", {"e": "", "o": "Hi."}, {"calder"})
    assert not asks(messages[0]) and request_questions(messages) == []
    # "At least" opens the sentence; it is no part of its subject
    assert _turned("At least my brother Corvin is visiting on Saturday.", "corvin", "saturday")[0] == \
        "When is my brother Corvin visiting?"
    # a name after "is my cousin" is who the subject is ("What is the drummer my cousin?")
    assert _turned("thanks! btw the drummer is my cousin Fenna", "fenna") == ["Who is the drummer?"]
    # a second clause with one name for its subject is cut at its own values, the first at its own
    both = _turned("Kaspar is moving to Yelbridge for work, and Annika's off to Droverton to be near her parents.",
                   "kaspar", "yelbridge", "annika", "droverton")
    assert "Where is Kaspar moving?" in both and "Where is Annika off to?" in both


def test_requests_for_places_and_stops_and_a_choice_between_two():
    """Requests written for this test (none from a data set); each asked garbage or nothing before."""
    assert asked("We're driving to the coast this weekend, any stops worth making?", "Stop at Bramwell Falls.") == [
        "Which stop did you recommend?", "What stop did you suggest?"]
    assert asked("Any suggestions for where to stay in Lisbon?", "Stay in Alfama.")[0] == \
        "Where did you suggest I stay in Lisbon?"
    # the value is one of a list: "What am I torn between Vienna and?" was asked
    assert statement_questions("I'm torn between Vienna and") == []


def test_a_place_one_is_at_after_leaving_another_is_where_one_works_or_lives():
    """Corrections written for this test (none from a data set): "I left Gorbel last month, I'm at Lobel now"
    asked nothing that "I work at Gorbel" was asked by, so it corrected nothing of it."""
    assert "Where do I work?" in _turned("I left Gorbel last month, I'm at Lobel now.", "gorbel", "lobel")
    moved = statement_questions("We left Dunmore in May, we're in")
    assert "Where do we live?" in moved and "Where do I work?" not in moved
    from trainer.questions import about_something
    from trainer.text import words
    assert about_something("Where do I work?", words("I left Gorbel last month, I'm at Lobel now."))


def test_a_correction_told_as_a_new_code_or_a_changed_thing():
    """Corrections written for this test (none from a data set); each asked garbage or nothing before."""
    assert _turned("New locker code: 9902, the old one stopped working.", "9902") == ["What is the new locker code?"]
    assert statement_questions("My locker code:") == ["What is my locker code?"]
    assert "What is my wifi password?" in _turned("I changed the wifi password, it's now redkite47.", "redkite47")
    # "called" alone after a clause names a thing no question can say whose ("What did Oskar leave Rennet is
    # called?")
    assert _turned("Oskar left Rennet's, he runs his own food truck now, called Oskar's Wheels.", "oskar", "rennet",
                   "wheels") == ["What did Oskar leave?"]


def test_a_value_before_its_kind_a_count_and_an_age_in_a_relative_clause():
    """Sentences written for this test (none from a data set); each asked garbage before."""
    assert _turned("I usually take the 7:40 train to work.", "40") == ["Which train do I take?"]  # "When do I take?"
    assert _turned("I take the 42 bus.", "42") == ["Which bus do I take?"]
    assert "Which half did I sign up for?" not in _turned("I signed up for the Abobr half marathon.", "abobr")
    # "Where does three hive?"
    assert statement_questions("I keep bees, three hives at") == []
    assert statement_questions("A friend of mine works at")[0] == "Where does a friend of mine work?"
    # "What do we have a tortoise named Gerald who's?"
    tortoise = _turned("We have a tortoise named Gerald who's 40 years old.", "gerald", "40")
    assert "How old is Gerald?" in tortoise and not any("who's" in q for q in tortoise)


def test_a_suggestion_unasked_named_with_its_kind_or_called_it():
    """Replies written for this test (none from a data set); each asked only about the name before."""
    from trainer.decisions import suggestion_questions
    assert suggestion_questions(chat("I'm bored this weekend.", "You could visit the Haldane Museum; it has a "
                                     "great dinosaur hall.")) == ["Which museum did you recommend?",
                                                                  "What museum did you suggest?"]
    assert suggestion_questions(chat("We're planning a trip to Rome.", "Make sure to eat at Trattoria Belmonte "
                                     "near the Pantheon."))[0] == "Which trattoria did you recommend?"
    # "it" is what the user told they are starting
    assert suggestion_questions(chat("I'm starting a book club.", "Fun! You could call it the Page Turners.")) == [
        "What did you suggest calling my book club?", "Which name did you pick for my book club?",
        "What name did you suggest for my book club?"]
    # a place the user names is no suggestion of the assistant's
    assert suggestion_questions(chat("I went to the Haldane Museum.", "Sounds fun!")) == []


def test_two_peoples_facts_in_one_chat_in_other_words():
    """Chat lines written for this test (none from a data set); each asked garbage before."""
    # "What does Had coffee with two old friend today?": the "I" left out; the names after the comma are
    # who, no value of what was said
    assert statement_questions("Got a new job at")[0] == "Where did I get a new job?"
    assert _turned("Had coffee with two old friends today, Brann Eskel and Mira Joss.", "brann", "eskel", "mira",
                   "joss") == []
    assert _turned("We had a baby girl last week, Odessa.", "odessa")[0] == "What is our baby girl called?"
    # "What did the Ardens next door have a new puppy call?"; "The kids have" read "kids" as the verb
    assert statement_questions("the Ardens next door have a new puppy called") == [
        "Which puppy do the Ardens next door have?"]
    assert statement_questions("The kids have a hamster called") == ["Which hamster do the kids have?"]
    # "her" is not the guy's, and may be the name that opens the sentence
    assert statement_questions("Tova got engaged to a guy called Ruben, and her brother Lev started at")[0] == \
        "Where did Tova's brother Lev start?"
    assert statement_questions("Yesterday Ruben got a job, and his sister works at")[0] == \
        "Where does Ruben's sister work?"


def test_small_talks_openings_and_a_question_in_stop_words_only():
    """Chat lines written for this test (none from a data set); each asked garbage or nothing before."""
    from trainer.questions import about_something
    from trainer.text import words
    # "Where am I from?" has no content word: it was dropped as about nothing the chat said
    assert about_something("Where am I from?", words("Me? I'm from Dunmarsh, born and raised."))
    assert not about_something("What did I might?", words("I might go."))
    # openings of small talk ("What is random but my favourite dinosaur?", "What did haha my son name ...?")
    assert statement_questions("random but my favourite dinosaur is the") == ["What is my favourite dinosaur?"]
    assert statement_questions("haha my son named his goldfish") == ["What did my son name his goldfish?"]
    assert statement_questions("Just got back from my sister's place in")[0] == \
        "Where did I get back from my sister's place?"
    # the naming is of the goldfish, not of my son; "my brother's moving" is my brother
    assert not any("my son called" in q for q in handle_questions(chat("my son named his goldfish Sir Fins", "Ha!"), 2))
    assert handles("so yeah my brother's moving to Pellham next month") == ["my brother"]
    # "Our car's a Fendra": is, not whose
    assert statement_questions("Our car's a") == ["What is our car?", "What kind of car do we have?",
                                                  "What car do we have?"]
    # a verb after the user's thing ends it: "our book club meets" was a handle
    assert handles("Our book club meets at Hartley's Cafe.") == ["our book club", "our club"]


def test_a_request_in_two_sentences_what_it_is_for_told_first():
    """Requests written for this test (none from a data set); each asked nothing or garbage before."""
    assert asked("We're hosting a quiz night and need a team name. Thoughts?", "The Know-It-Owls!") == [
        "Which team name did you pick for our quiz night?", "What team name did you suggest for our quiz night?"]
    assert asked("I'm opening a coffee shop. Name ideas?", "Bean There?") == [
        "Which name did you pick for my coffee shop?", "What name did you suggest for my coffee shop?"]
    assert asked("I just bought a sailboat! Need a name for it.", "Call her the Wandering Gull.") == [
        "Which name did you pick for my sailboat?", "What name did you suggest for my sailboat?"]
    assert asked("Thinking of a new hobby. What would you suggest?", "Try bouldering.") == [
        "Which hobby did you suggest?", "What hobby did you recommend?"]
    # "her" is the puppy the turn told of ("What did you suggest we call her?")
    assert "What name did you suggest for our puppy?" in asked("Our new puppy is a girl. What should we call her?",
                                                               "Maple would be sweet.")
    # "What colour did you suggest my slides be my presentation?"
    assert asked("I have a presentation on Friday. What colour should my slides be?", "Navy.") == [
        "What did you suggest for my slides?", "What did you say my slides should be?",
        "What colour did you suggest for my slides?"]


def test_codes_lists_and_every_week_in_everyday_facts():
    """Sentences written for this test (none from a data set); each asked garbage before."""
    # a code is no name: "What is my flight number called?"
    assert not any("called" in q for q in handle_questions(chat("My flight number is BA 2291.", "Noted."), 2))
    assert not any("called" in q for q in handle_questions(chat("My license plate is KD71 XRT.", "Noted."), 2))
    # "What is my favourite food my?", "What do I speak Dutch and?", "When do I play badminton every?"
    assert _turned("My favourite food is my nan's lamb hotpot.", "nan", "hotpot")[:2] == [
        "What is my favourite food?", "Which food do I like best?"]
    assert _turned("I speak Dutch and a little Farsi.", "dutch", "farsi") == ["What do I speak?"]
    assert "When do I play badminton?" in _turned("I play badminton every Tuesday at the Elm Street sports hall.",
                                                  "tuesday", "elm")


def test_a_rhetorical_question_tells_and_asks_nothing():
    """Chat lines written for this test (none from a data set): each was read as a request ("What did you
    suggest for my dog?") and its fact not turned."""
    for line, asked_now in [("Isn't it funny that my dog is called Captain?", "What is my dog called?"),
                            ("Can you believe my boss Heather quit?", "What is my boss called?"),
                            ("Would you believe our new flat is on Mercer Street?", "Where is our new flat?"),
                            ("So my best mate Dev is getting married in Lisbon, how exciting is that?",
                             "Where is my best mate Dev getting married?")]:
        messages = chat(line, "Wow!")
        assert not asks(messages[0]) and request_questions(messages) == []
        values = {w.strip("?,").lower() for w in line.split() if w[:1].isupper()} - {"isn't", "can", "would", "so"}
        found = turned_questions(messages, "e", {"e": "", "o": "Hi."}, values) + handle_questions(messages, 2)
        assert asked_now in found, (line, found)


def test_corrections_told_with_a_dash_or_a_new_thing_bare():
    """Corrections written for this test (none from a data set); each asked garbage or nothing before."""
    # "What did Pesto get renamed - the kids call him?": a dash ends a clause as a comma does
    assert not any(" - " in q for q in _turned("Pesto got renamed - the kids call him Noodle now.", "pesto",
                                                 "noodle"))
    # "New phone number, it ends in 9023 now." asked nothing; "my phone number ends" was a handle
    assert "What does my phone number end in?" in _turned("New phone number, it ends in 9023 now.", "9023")
    assert handles("My phone number ends in 4471.") == ["my phone number", "my number"]


def test_since_a_year_an_address_a_name_with_of_and_someones_date():
    """Sentences written for this test (none from a data set); each asked garbage before."""
    lived = _turned("I've lived in Fenwick since 2015.", "fenwick", "2015")
    assert "How long have I lived in Fenwick?" in lived and not any("since?" in q for q in lived)
    # "at 22 Orchard Close" is an address, no time ("When is our house the blue one?")
    assert not any(q.startswith("When") for q in _turned("Our house is the blue one at 22 Orchard Close.", "22",
                                                         "orchard"))
    # "What did I get my degree from the University of?"
    assert not any(q.endswith("of?") for q in _turned("I got my degree from the University of Harlow.", "harlow"))
    # "When kind of son's birthday do I have?"
    assert not any("kind" in q for q in _turned("My son's birthday is the 2nd of August.", "2nd", "august"))


def test_help_naming_a_time_to_meet_and_a_kind_that_is_not_mine():
    """Requests and sentences written for this test (none from a data set)."""
    assert asked("I need help naming my Etsy shop, it sells candles.", "How about Wick & Wonder?") == [
        "Which name did you pick for my Etsy shop?", "What name did you suggest for my Etsy shop?"]
    # "Which time did you pick for meet my mentor next week?"
    assert "Which time did you pick to meet my mentor?" in asked("Suggest a time to meet my mentor.",
                                                                          "Tuesday at 10am.")
    # the YouTuber one learns from is nobody's ("What is my youtuber called?")
    assert not any("my youtuber" in q.lower() for q in _turned(
        "I've been learning to bake sourdough from a YouTuber called Breadhead Ben.", "breadhead", "ben"))


def test_an_adverb_after_an_appositive_and_an_irregular_past_in_a_relative_clause():
    """Sentences written for this test (none from a data set); each asked garbage before."""
    # "Where did just start?"
    assert "Where did my eldest start?" in _turned("My eldest, Freya, just started at Dunmore Academy.", "freya",
                                                   "dunmore", "academy")
    # "came" is a past: the relative clause's verb, so "was" is the sentence's ("What did the plumber ... was call?")
    assert statement_questions("The plumber who came round was called")[0] == \
        "What was the plumber who came round called?"


def test_a_kind_of_two_words_a_date_that_is_no_kind_a_british_past_and_our_move():
    """Requests and sentences written for this test (none from a data set); each asked garbage or nothing."""
    # "Which board game should we play tonight?" asked nothing: the kind was read as one word
    assert asked("Which board game should we play tonight?", "I'd suggest Harbour Lights.") == [
        "Which board game did you suggest we play tonight?", "Which board game did you tell us to play tonight?"]
    assert asked("I can't decide which board game to buy.", "Harbour Lights.")[0] == \
        "Which board game did you suggest I buy?"
    # "When wedding anniversary do we have?", "What kind of birthday do I have?": a date is no kind of thing
    anniversary = _turned("Our wedding anniversary is the 9th of June.", "9th", "june")
    assert "When is our wedding anniversary?" in anniversary and not any(q.endswith(" have?") for q in anniversary)
    # "What did I cancell?"
    assert "What did I cancel?" in _turned("I cancelled FitForge, I go to Ironhaus now.", "fitforge", "ironhaus")
    assert statement_questions("I travelled to")[0] == "Where did I travel?"
    # a move told by "we" is where the user lives ("Where do I live?" of "I live in Marrowby" is asked again)
    assert "Where do I live?" in _turned("We've just moved to Tellingford!", "tellingford")
    # what follows "so" or "but" is a clause of its own ("What am I allergic to hazelnuts so?")
    allergy = _turned("I'm allergic to hazelnuts so watch out with recipes.")
    assert "What am I allergic to?" in allergy and not any(q.endswith(" so?") for q in allergy)
    assert statement_questions("I work at Lobel but") == []


def test_someone_named_and_their_things_told_the_way_people_talk():
    """Sentences written for this test (none from a data set); each asked garbage or nothing before."""
    # "she" is Lysa, not the firm she quit ("Where is Harbinger Books?"); quitting frames work
    quit_ = _turned("Lysa Crane quit Harbinger Books, she's at Orchid Press now.", "lysa", "crane", "harbinger",
                    "books", "orchid", "press")
    assert "Where does Lysa Crane work?" in quit_ and not any("Harbinger Books?" in q for q in quit_)
    # a thing someone named has, then its name ("What is Lunara Vex's name?")
    parrot = _turned("Lunara Vex has a parrot that can say forty words, his name is Pico.", "lunara", "vex", "pico")
    assert "What is Lunara Vex's parrot called?" in parrot and "What is Lunara Vex's name?" not in parrot
    # someone's thing renamed, or told by its kind after a comma (nothing was asked)
    assert "What is Nils Varga's dog called?" in _turned("Nils Varga renamed his dog, it's Captain now.", "nils",
                                                         "varga", "captain")
    assert "What kind of car does Aurelio Fenn have?" in _turned("Aurelio Fenn got a new car, it's a red Mistral.",
                                                                 "aurelio", "fenn", "mistral")
    # "X adopted a puppy and named it": X's puppy ("What did X name the X's puppy?" on the way)
    puppy = _turned("By the way, Hepwyn Droust adopted a puppy and named it Moxwyn.", "hepwyn", "droust", "moxwyn")
    assert puppy[:2] == ["What is Hepwyn Droust's puppy called?", "What did Hepwyn Droust name the puppy?"]
    # "his wife Pia" is Hollis's, and the clause after ", and Everett met" is a fact of its own
    met = _turned("Hollis met his wife Pia at a salsa class, and Everett met his husband Joaquin at a bus stop.",
                  "hollis", "pia", "everett", "joaquin")
    assert {"What is Hollis's wife called?", "Who is Everett's husband?"} <= set(met)
    assert not any("meet his" in q for q in met)
    # an opening adverb is no part of a name ("What is Apparently Corwin Blake's favourite band?")
    assert _turned("Apparently Corwin Blake's favourite band is the Ember Tides.", "corwin", "blake", "ember",
                   "tides")[0] == "What is Corwin Blake's favourite band?"
    # working as something for a firm: for whom, and where
    assert {"Who does Tobin Quayle work for?", "Where does Tobin Quayle work?"} <= set(_turned(
        "Tobin Quayle works as a pilot for Skyreach Air.", "tobin", "quayle", "skyreach", "air"))


def test_a_fact_told_in_a_turn_that_asks_something_else_is_the_users():
    from trainer.questions import handle_questions

    messages = chat("By the way my sister Imogen lives in Pellbridge now. Anyway, what's the weather like?",
                    "It depends where you are.")
    asked_of = handle_questions(messages, 2)
    assert "What is my sister called?" in asked_of and not any("did you" in q for q in asked_of)
    # the request's own sentence still asks what the assistant chose
    assert handle_questions(chat("Pick a PIN for my suitcase lock, I can't decide.", "How about 9729?"), 2)[0] == \
        "What did you suggest for my suitcase lock?"


def test_naming_it_after_telling_of_it_and_what_i_could_call():
    """Requests written for this test (none from a data set); each asked nothing or a cut thing before."""
    assert asked("I got a new guitar! Help me name it.", "How about Rosie?") == [
        "Which name did you pick for my guitar?", "What name did you suggest for my guitar?"]
    assert asked("Help me name it.") == []  # nothing told to name
    assert asked("What could I call my new bakery's signature bread?", "The Sunrise Loaf.")[0] == \
        "What did you suggest I call my new bakery's signature bread?"


def test_a_fact_in_a_long_turn_of_small_talk():
    """Turns written for this test (none from a data set); each asked garbage or nothing before."""
    from trainer.questions import handle_questions

    # a telling question after a comma tells ("What did you suggest for my aunt?" of a fruit-fly question)
    turn = ("Work was mad, the car broke down, and oh, did I mention my aunt Bev moved to Kilrush? Anyway, how do I "
            "get rid of fruit flies?")
    moved = _turned(turn, "bev", "kilrush")
    assert "Where does my aunt Bev live now?" in moved
    assert not any("did you" in q for q in handle_questions(chat(turn, "Cider vinegar works."), 2))
    # someone described before their name, after what they are ("What did a lad call?")
    assert statement_questions("The new intern, a lad called") == ["Who is the new intern?",
                                                                    "What is the new intern called?"]
    assert statement_questions("I met him, a guy called") == []
    # "its" is the cat's, not the garden it gets into
    cat = chat("My neighbour's cat keeps getting into our garden. Its name is Smudge, apparently.", "Cats!")
    assert "What is my neighbour's cat's name?" in _turned(cat[0]["content"], "smudge")
    assert "What is our garden called?" not in handle_questions(cat, 2)


def test_a_one_digit_number_is_a_told_value():
    """"My daughter is 7." asked nothing: a single digit was no word, so no value."""
    from trainer.text import values, words

    assert "7" in values("My daughter is 7 and obsessed with dinosaurs.") and "7" in words("She is 7.")
    assert "How old is my daughter?" in _turned("My daughter is 7 and obsessed with dinosaurs.", "7")


def test_ages_told_by_a_pronoun_or_bare_and_a_weekly_thing():
    """Sentences written for this test (none from a data set); each asked garbage or nothing before."""
    from trainer.questions import about_something
    # "I'm 34" is asked how old I am, and that names the user though all its words are stop words or "old"
    assert _turned("I'm 34, turning 35 in May.", "34", "35", "may") == ["How old am I?"]
    assert about_something("How old am I?", {"34", "turning", "35", "may"})
    # "she's 3" is the one she names ("What is Juniper?")
    assert _turned("My sister's kid is called Juniper and she's 3.", "juniper", "3")[-1] == "How old is Juniper?"
    # "every Wednesday" asks when ("When is my yoga class every?")
    assert _turned("My yoga class is every Wednesday evening at the Lotus Studio.", "wednesday", "lotus",
                   "studio")[0] == "When is my yoga class?"


def test_what_it_or_he_names_after_a_thing_told_of_the_users_people():
    """Sentences written for this test (none from a data set); each asked garbage or nothing before."""
    from trainer.questions import handle_questions

    # "He's a spaniel" says what the puppy is ("What did we name the spaniel?")
    assert _turned("We got a puppy! He's a spaniel and we named him Barnaby.", "barnaby")[:2] == [
        "What did we name our puppy?", "What is our puppy called?"]
    # a thing told as there ("There's a new café on our street. It's called" asked nothing)
    assert "What is the café called?" in _turned("There's a new café on our street. It's called The Daily Grind.",
                                                 "daily", "grind")
    # the user's people tell of theirs: "my best mate ... bought a house. It's in" is my best mate's house
    assert "Where is my best mate's house?" in _turned("So my best mate finally bought a house. It's in Winsford.",
                                                        "winsford")
    school = chat("My son started a new school. It's called Oakridge Primary.", "Exciting!")
    assert "What is my son's school called?" in _turned(school[0]["content"], "oakridge", "primary")
    assert "What is my son called?" not in handle_questions(school, 2)  # "it" is the school, not my son


def test_a_thing_set_or_moved_to_a_new_value_and_a_verb_after_my_thing():
    """Sentences written for this test (none from a data set); each asked garbage or nothing before."""
    from trainer.questions import handles

    # "Where did I change the wifi password?"
    assert _turned("I changed the wifi password to Orchid77.", "orchid77")[:2] == [
        "What is the wifi password?", "What is the wifi password now?"]
    # a rescheduling asks when the thing is now ("When did the meeting get moved to?")
    assert {"When is the meeting?", "When is the meeting now?"} <= set(
        _turned("The meeting got moved to Thursday.", "thursday"))
    assert "When is my dentist appointment?" in _turned("They rescheduled my dentist appointment to the 10th.", "10th")
    assert "When is our flight now?" in _turned("Our flight was pushed back to 9:30.", "9", "30")
    # a verb after the user's thing ends it ("my train leaves", "my kids go", "my parents live")
    assert handles("My train leaves at 7:15.") == ["my train"]
    assert handles("My kids go to Ashgrove.") == ["my kids"] and handles("my parents live in Leeds") == ["my parents"]
    assert handles("My running shoes are Asics.") == ["my running shoes", "my shoes"]


def test_a_plan_the_assistant_made_is_asked_item_by_item():
    """Requests and replies written for this test (none from a data set); each asked nothing before."""
    from trainer.plans import plan_questions

    trip = chat("Plan a three-day trip to Ostrava for me.", "Day 1: the old town. Day 2: a day trip to Hradec "
                "Falls. Day 3: the Brannik Brewery tour.")
    assert plan_questions(trip) == [
        "What did you plan for my three-day trip to Ostrava?", "What did you suggest for my three-day trip to Ostrava?",
        *[f"What did you {verb} for day {n}?" for n in (1, 2, 3) for verb in ("plan", "suggest")]]
    workout = plan_questions(chat("Make me a weekly workout plan.", "Monday: running. Wednesday: swimming at "
                                  "Lakeside Pool."))
    assert workout[:3] == ["What did you put in my weekly workout plan?",
                           "What did you suggest for my weekly workout plan?", "What did you plan for Monday?"]
    # a thing made that is no plan, one label alone, or no reply: nothing
    assert plan_questions(chat("Make me a sandwich.", "Note: I can't make food.")) == []
    assert plan_questions(chat("Plan my week.")) == []
    assert asked("Can you set a budget for our holiday?", "Let's say £1,200.")[0] == \
        "What budget did you set for our holiday?"
