"""Write a conversational-memory dev set in format v2 (shared/eval/README.md), from our own inventory.

    .venv/bin/python bench/make_memory_set.py --seed 1 --out bench/data/memory-dev-a.jsonl
    .venv/bin/python bench/make_memory_set.py --seed 2 --out bench/data/memory-dev-b.jsonl
    .venv/bin/python bench/make_memory_set.py --seed 5 --nights 2 \
        --mix user=2,assistant=6,update=1,multi=1,long=1 --out bench/data/memory-dev-c.jsonl
    .venv/bin/python bench/make_memory_set.py --seed 7 --nights 2 --first spoken \
        --mix user=6,assistant=2,update=2,multi=1,long=1 --out bench/data/memory-dev-d.jsonl
    .venv/bin/python bench/make_memory_set.py --seed 11 --nights 2 --first everyday --assist everyday \
        --own-updates 1 --mix user=5,assistant=3,update=3,multi=1,long=1 --out bench/data/memory-dev-e.jsonl

The project is judged on hidden sets with other names, relations, phrasings and small talk, so this
generator aims at variety, not at the public file: its own syllables (none of the public set's), its own
relations and phrasings (several per relation, for telling and for asking), its own small talk and
acknowledgements. Categories (`--mix`, cases per night): `user` (a first-person fact among small talk;
one namespace is one user, so each first-person relation is told once per file), `assistant` (the user
asks the assistant to suggest or decide, its reply holds the value), `update` (a fact on one night, its
correction on a later night: `superseded_by` / `supersedes`, the old value in the correction's
`reject`; the count is the originals per night, on every night but the last), `multi` (two facts about
two people in one chat), `long` (one fact early in a long chat, 5-8 exchanges of small talk after it).
Ids are opaque (`dev-s1-017`): nothing in what the trainer may read names a category or a pairing.
`--first spoken` draws the user's own facts from `SPOKEN` instead of `FIRST`: the loose shapes of speech
(a pronoun for a pet told the sentence before, "me and my wife", a fact in a "because" clause, "has to
be"), asked in words the telling does not use. `--first everyday --assist everyday` draws them and the
requests from `EVERYDAY` and `ASSIST_EVERYDAY`: everyday chat ("Did I tell you ...?", "His teacher, Mr
X,"), requests ("Any good book for the flight?", "Plan my Saturday"), and corrections told without the
fact's own word ("I changed jobs, I'm at X now", "We moved. We're in X now"; `--own-updates 1` makes every
correction one of the user's own while any is left).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SYLLABLES = ["ab", "cor", "ist", "jan", "mub", "nev", "obr", "phi", "quor", "sev", "tuz", "ull", "wyn", "yar",
             "zil", "bri", "cav", "hep", "ked", "lir", "mox", "fyr", "gil", "ust", "ev", "dro"]
PREFIXES = ["", "", "By the way, ", "Oh, and ", "Random thing, but ", "Just so you know, ", "Before I forget, "]
ACKS = ["Thanks, I'll keep that in mind.", "Noted!", "Good to know, thanks.", "Got it.", "I'll remember that.",
        "Lovely, thanks for sharing.", "Understood.", "Oh nice, noted.", "Thanks for the update.", "Okay, got it."]

SMALL_TALK = [
    ("I can't believe it's already the middle of the month.",
     "Time really does fly. Anything planned for the rest of it?"),
    ("My coffee machine broke this morning.", "Oh no, that's a rough start. Instant coffee to the rescue?"),
    ("I've been trying to drink more water lately.", "That's a good habit. A bottle on your desk can help."),
    ("The neighbours were drilling all afternoon.", "That sounds exhausting. I hope it's finished now."),
    ("Do you think it's worth learning to knit?", "Sure, it's relaxing and you end up with something useful."),
    ("I just cleaned out the whole garage.", "That's a big job. It must feel great to have space again."),
    ("My phone battery dies so fast these days.", "Batteries wear out over time; a replacement might help."),
    ("I'm thinking about repainting the kitchen.", "A fresh colour can change a room a lot. Any shade in mind?"),
    ("What's a good stretch after sitting all day?", "Try a standing forward fold and some shoulder rolls."),
    ("The bus was packed again today.", "Rush hour can be brutal. Did you at least get a seat?"),
    ("I burned the toast twice this morning.", "Happens to the best of us. Maybe lower the setting a notch."),
    ("I finally fixed the squeaky door.", "Nice work! A little oil makes such a difference."),
    ("It snowed a bit overnight.", "How pretty. Stay warm if you go out."),
    ("I'm so tired of answering emails.", "Blocking out a fixed time for email can make it less draining."),
    ("Do you have any tips for a long flight?", "Stay hydrated, walk the aisle now and then, and bring earplugs."),
    ("I started a jigsaw puzzle with a thousand pieces.", "Ambitious! Edges first is the classic approach."),
    ("My houseplants look a bit sad.", "They might need more light or less water. Check the soil first."),
    ("I went for a swim before work.", "That's an energising way to start the day."),
    ("Is it weird to eat cereal for dinner?", "Not at all. Sometimes simple is exactly right."),
    ("I can never remember where I put my keys.", "A small bowl by the door can become their permanent home."),
    ("We had a power cut last night.", "That's annoying. I hope nothing in the freezer thawed."),
    ("I'm trying to read more before bed.", "Great idea. Paper books are easier on the eyes at night."),
    ("My back hurts from the new chair.", "Adjusting the seat height and lumbar support might help."),
    ("The market had amazing strawberries today.", "Lucky you! Fresh strawberries are hard to beat."),
    ("I think I'm catching a cold.", "Rest up and drink plenty of warm fluids."),
    ("I signed up for a pottery class.", "How fun! Working with clay is very calming."),
    ("My internet has been slow all week.", "Restarting the router sometimes clears it up."),
    ("I watched the sunrise this morning.", "That sounds peaceful. Worth getting up early for."),
    ("Should I bring an umbrella tomorrow?", "Better safe than sorry, it never hurts to have one."),
    ("I've been sleeping badly lately.", "A calm routine and a cool, dark room can help."),
    ("I tried a new recipe and it flopped.", "Every cook has those days. What went wrong?"),
    ("My laptop keeps making a weird noise.", "It might be the fan. Cleaning out the dust could help."),
    ("Traffic was terrible on the way home.", "Ugh, that's tiring. Good thing you're home now."),
    ("I'm thinking of taking up cycling.", "It's great exercise and a nice way to see the area."),
    ("The printer jammed three times today.", "Printers seem to know when you're in a hurry."),
    ("I reorganised my bookshelf by colour.", "That must look lovely, even if it's harder to find things."),
    ("I keep forgetting to call my aunt back.", "Maybe set a reminder for this evening."),
    ("It's been really windy all day.", "Hold on to your hat! Hopefully it calms down tonight."),
    ("I ate way too much at lunch.", "A short walk might help you feel better."),
    ("I'm learning to juggle, it's harder than it looks.", "Start with two balls and build up slowly."),
]

# first-person relations: (ways the user tells it, probes, kind of value, corrections or None, probes after one)
FIRST = {
    "dog": (["My dog is called {v}.", "We named our dog {v} when we got him.", "Our dog {v} chewed my shoes again."],
            ["What is my dog called?", "What's the name of my dog?", "What did we name our dog?"], "word", None, None),
    "cat": (["Our cat {v} sleeps on the radiator all day.", "My cat's name is {v}."],
            ["What is my cat's name?", "What's our cat called?"], "word", None, None),
    "car": (["I drive a {v}, it's old but reliable.", "My car is a {v}."],
            ["What car do I drive?", "What kind of car do I have?"],
            "word", ["I sold the {o} and bought a {n}.", "I don't drive the {o} anymore, I got a {n}."],
            ["What car do I drive now?", "What kind of car do I have now?"]),
    "sister": (["My sister's name is {v}.", "My sister {v} is visiting next week."],
               ["What's my sister's name?", "What is my sister called?"], "word", None, None),
    "brother": (["My older brother is called {v}.", "I'm meeting my brother {v} for lunch tomorrow."],
                ["What is my brother's name?", "Who is my brother?"], "word", None, None),
    "birthplace": (["I was born in {v}.", "I was born in a small town called {v}."],
                   ["Where was I born?", "What town was I born in?"], "word", None, None),
    "band": (["My favourite band is {v}.", "I've had {v} on repeat all week, they're my favourite band."],
             ["What is my favourite band?", "Which band do I like most?"], "word",
             ["I'm over {o} now, my favourite band these days is {n}."], ["What is my favourite band now?"]),
    "employer": (["I work at {v}.", "I started a new job at a firm called {v}."],
                 ["Where do I work?", "What's the name of the company I work for?"], "word",
                 ["I quit {o}! I work at {n} now.", "Not {o} anymore, I moved to a job at {n}."],
                 ["Where do I work now?", "Which company do I work for now?"]),
    "road": (["I live on {v} Road.", "Our flat is on {v} Road, near the park."],
             ["Which road do I live on?", "What road is my flat on?"], "word",
             ["We moved house: we're on {n} Road now, not {o} Road.", "We left {o} Road, our new flat is on {n} Road."],
             ["Which road do I live on now?", "What road is my new flat on?"]),
    "pony": (["My daughter's pony is called {v}."], ["What is my daughter's pony called?",
                                                      "What's the name of my daughter's pony?"], "word", None, None),
    "doctor": (["My doctor is Dr {v}.", "I saw my doctor, Dr {v}, this morning."],
               ["Who is my doctor?", "What's my doctor's name?"], "word",
               ["I changed doctors, I see Dr {n} now instead of Dr {o}."], ["Who is my doctor now?"]),
    "partner": (["My partner is called {v}.", "My partner {v} made dinner tonight."],
                ["What's my partner's name?", "What is my partner called?"], "word", None, None),
    "bikelock": (["The code for my bike lock is {v}.", "My bike lock opens with {v}."],
                 ["What is the code of my bike lock?", "Which code opens my bike lock?"], "number",
                 ["I reset my bike lock, the code is {n} now, not {o}."], ["What is the code of my bike lock now?"]),
    "boat": (["I keep a little rowing boat called the {v}."],
             ["What is my boat called?", "What's the name of my boat?"],
             "word", None, None),
    "dish": (["My favourite dish is {v}, my grandmother's recipe.", "Nothing beats {v}, it's my favourite dish."],
             ["What is my favourite dish?", "Which dish do I like best?"], "word", None, None),
    "school": (["I went to school at {v} Academy."], ["Which school did I go to?", "What was my school called?"],
               "word", None, None),
    "grandmother": (["My grandmother lives in {v}.", "My grandmother has a cottage in {v}."],
                    ["Where does my grandmother live?", "Which town does my grandmother live in?"], "word",
                    ["My grandmother moved from {o} to {n}."], ["Where does my grandmother live now?"]),
    "fern": (["I named my fern {v}.", "My fern is called {v}, don't laugh."], ["What did I name my fern?",
                                                                               "What is my fern called?"], "word",
             None, None),
    "flat": (["My flat number is {v}."], ["What is my flat number?", "Which flat number is mine?"], "number",
             None, None),
    "cardgame": (["I've been learning an old card game called {v}."],
                 ["Which card game am I learning?", "What card game have I been learning?"], "word", None, None),
    "team": (["I support {v} United.", "I've supported {v} United since I was a kid."],
             ["Which team do I support?", "What football team do I support?"], "word", None, None),
    "wifi": (["My wifi network is called {v}."], ["What is my wifi network called?",
                                                   "What's the name of my wifi network?"], "word", None, None),
    "teacher": (["My son's teacher is Ms {v}.", "I met my son's teacher, Ms {v}, at the school fair."],
                ["Who is my son's teacher?", "What's the name of my son's teacher?"], "word",
                ["My son has a new teacher: Ms {n} took over from Ms {o}."], ["Who is my son's teacher now?"]),
    "author": (["My favourite author is {v}.", "I'll read anything by {v}, my favourite author."],
               ["Who is my favourite author?", "Which author do I like best?"], "person", None, None),
    "choir": (["I sing in a choir called {v}."], ["Which choir do I sing in?", "What is my choir called?"], "word",
              ["I switched choirs: I sing with {n} now, I left {o}."], ["Which choir do I sing in now?"]),
}

# first-person relations told the way people talk: across two sentences, two subjects, a clause
SPOKEN = {
    "rabbit": (["I finally adopted a rabbit! His name is {v}.", "We got a rabbit last month. She's called {v}."],
               ["What is my rabbit called?", "What's my rabbit's name?"], "word", None, None),
    "wedding": (["Me and my wife got married in {v}.", "My husband and I got married in {v} back in 2015."],
                ["Where did I get married?", "Which town did I get married in?"], "word", None, None),
    "mother": (["I speak a little Spanish because my mother is from {v}.",
                "My mum grew up in {v}, so we visit every summer."],
               ["Where is my mother from?", "Which town is my mum from?"], "word", None, None),
    "aunt": (["I have an aunt. She lives in {v}.", "My aunt lives over in {v} these days."],
             ["Where does my aunt live?", "Which town does my aunt live in?"], "word",
             ["My aunt moved, she lives in {n} now, not {o}."], ["Where does my aunt live now?"]),
    "perfume": (["My favourite perfume has to be {v}.", "If I had to pick, my favourite perfume would be {v}."],
                ["What is my favourite perfume?", "Which perfume do I like best?"], "word", None, None),
    "bakery": (["Me and my brother run a bakery called {v}.", "My partner and I own a little bakery, it's called {v}."],
               ["What is my bakery called?", "What's the name of the bakery I run?"], "word", None, None),
    "kitten": (["We have a new kitten. We named her {v}.", "I got a kitten yesterday, I'm calling him {v}."],
               ["What is my kitten called?", "What did we name the kitten?"], "word", None, None),
    "neighbour": (["Ugh, long week. Anyway, my new neighbour is called {v}.",
                   "I finally met my neighbour, her name is {v}."],
                  ["What is my neighbour's name?", "What's my new neighbour called?"], "word", None, None),
    "gym": (["My gym is {v}, the one near the station.", "I work out at a gym called {v}."],
            ["Which gym do I go to?", "What is my gym called?"], "word",
            ["I switched gyms, I go to {n} now instead of {o}."], ["Which gym do I go to now?"]),
    "hometown": (["I grew up in a small town called {v}.", "I'm originally from {v}, but I moved away for uni."],
                 ["Where did I grow up?", "Where am I from?"], "word", None, None),
    "nephew": (["My nephew just started at {v} Academy.", "My nephew goes to school at {v} Academy now."],
               ["Which school does my nephew go to?", "Where does my nephew go to school?"], "word", None, None),
    "allergy": (["I'm allergic to {v}, so be careful with recipes.", "Heads up, I can't eat {v}, I'm allergic."],
                ["What am I allergic to?", "What can't I eat?"], "word", None, None),
    "race": (["I'm training for the {v} marathon in April.", "I signed up for the {v} half marathon."],
             ["Which marathon am I training for?", "What race did I sign up for?"], "word", None, None),
    "boss": (["My boss is a guy called {v}.", "I had a meeting with my boss, {v}, today."],
             ["Who is my boss?", "What's my boss's name?"], "person", None, None),
}
# first-person relations in the shapes of everyday chat the phrasing commits of 2026-12-07 (session 36) read:
# a pronoun after "a lot", a possessive pronoun's thing, "a new car, a ...", "Did I tell you ...?", and their
# corrections told without the fact's own word ("I changed jobs, I'm at ...", "We moved. We're in ...")
EVERYDAY = {
    "grandad": (["Been thinking about my grandad a lot. He was a fisherman in {v}.",
                 "My grandad was a fisherman, he worked out of {v} his whole life."],
                ["Where was my grandad a fisherman?", "Which town did my grandad fish from?"], "word", None, None),
    "sonteacher": (["My son plays the cello. His teacher, Mr {v}, is very strict.",
                    "My son has a new teacher. His name is Mr {v}."],
                   ["Who is my son's teacher?", "What's the name of my son's teacher?"], "word", None, None),
    "car": (["I got a new car, a {v}. Sold the old one.", "We finally bought a car, a {v}, second hand."],
            ["What car do I have?", "What kind of car do I drive?"], "word", None, None),
    "employer": (["I work at {v}.", "I've been at a firm called {v} for six years."],
                 ["Where do I work?", "Which company do I work for?"], "word",
                 ["I changed jobs, I'm at {n} now.", "I don't work at {o} anymore. I'm with {n} now."],
                 ["Where do I work now?", "Which company do I work for now?"]),
    "home": (["We live in a town called {v}.", "Our house is in {v}, near the river."],
             ["Where do I live?", "Which town do I live in?"], "word",
             ["We moved. We're in {n} now.", "We left {o} last spring, we live in {n} now."],
             ["Where do I live now?", "Which town do I live in now?"]),
    "dentist": (["I've been going to a dentist called Dr {v} for years.", "My dentist is Dr {v}, she's lovely."],
                ["Who is my dentist?", "What's my dentist's name?"], "word",
                ["I switched dentists, I see Dr {n} now.", "Not Dr {o} anymore, my new dentist is Dr {n}."],
                ["Who is my dentist now?", "What's my new dentist's name?"]),
    "niece": (["Did I tell you my niece got into {v} University?", "My niece just started at {v} University!"],
              ["Which university did my niece get into?", "Where does my niece study?"], "word", None, None),
    "landlord": (["My landlord fixed the boiler, his name's Mr {v}.", "Quick thing, my landlord's name is {v}."],
                 ["Who is my landlord?", "What is my landlord's name?"], "word", None, None),
    "surname": (["My sister's married now, her surname is {v}.", "My sister took her husband's surname, {v}."],
                ["What is my sister's surname?", "What's my sister's last name?"], "word", None, None),
    "wife": (["My wife's name is {v}, by the way.", "My wife {v} says hi."],
             ["What is my wife's name?", "What's my wife called?"], "word", None, None),
    "fiveaside": (["I play in a five-a-side team, we're called the {v}.", "Our five-a-side team is called the {v}."],
                  ["What is my five-a-side team called?", "Which team do I play five-a-side for?"], "word", None, None),
    "podcast": (["I'm a big fan of a podcast called {v}.", "I never miss an episode of {v}, my favourite podcast."],
                ["What is my favourite podcast?", "Which podcast do I listen to?"], "word", None, None),
    "bike": (["I've started calling my bike {v}.", "My bike's name is {v}, don't judge."],
             ["What do I call my bike?", "What is my bike called?"], "word", None, None),
    "gym": (["I go to a gym called {v}.", "My gym is {v}, it's open late."],
            ["Which gym do I go to?", "What is my gym called?"], "word",
            ["I've switched gyms, I'm a member at {n} now.", "Scratch what I said about my gym, it's {n} now."],
            ["Which gym do I go to now?", "What is my gym called now?"]),
}
FIRST_TABLES = {"written": FIRST, "spoken": SPOKEN, "everyday": EVERYDAY}

# third-person relations, the same shape; {p} a person, {s} their pronoun
THIRD = {
    "workplace": (["{p} works at a pharmacy called {v}.", "{p} just got hired at {v}, the bookshop on the corner.",
                   "My colleague {p} works at a bakery named {v}."],
                  ["Where does {p} work?", "What's the name of the place {p} works at?"], "word",
                  ["Actually, {p} doesn't work at {o} anymore, {s} works at {n} now.",
                   "{p} left {o}; {s} is at {n} these days.",
                   "Quick correction: {p} moved from {o} to a new job at {n}."],
                  ["Where does {p} work now?", "Which place does {p} work at these days?"]),
    "village": (["{p} lives in a village called {v}.", "{p} has a house in {v}, up in the hills."],
                ["Where does {p} live?", "Which village does {p} live in?"], "word",
                ["{p} moved to {n} last month.", "{p} isn't in {o} anymore, {s} lives in {n} now.",
                 "Turns out {p} sold the house in {o} and moved to {n}."],
                ["Where does {p} live now?", "Which place has {p} moved to?"]),
    "dog": (["{p}'s dog is called {v}.", "{p} adopted a puppy and named it {v}."],
            ["What is {p}'s dog called?", "What's the name of {p}'s dog?"], "word",
            ["Sorry, I got that wrong before: {p}'s dog is called {n}, not {o}.",
             "{p} renamed the puppy, it's {n} now instead of {o}."],
            ["What is {p}'s dog called now?", "What's the name of {p}'s dog now?"]),
    "room": (["{p}'s office is room {v}.", "You can find {p} in room {v} on the top floor."],
             ["Which room is {p}'s office?", "What's the number of {p}'s office?"], "room",
             ["{p}'s office moved from room {o} to room {n}.", "{p} is in room {n} now, not {o}."],
             ["Which room is {p}'s office now?", "What room is {p} in now?"]),
    "dish": (["{p}'s favourite dish is a stew called {v}.", "{p} always orders {v} when we eat out."],
             ["What is {p}'s favourite dish?", "What does {p} always order?"], "word",
             ["{p} has gone off {o}, {s} orders {n} every time now."], ["What does {p} order every time now?"]),
    "band": (["{p} plays bass in a band called {v}.", "{p}'s band {v} has a gig on Saturday."],
             ["Which band does {p} play in?", "What's the name of {p}'s band?"], "word",
             ["{p} quit {o} and joined {n}.", "{p} plays with {n} now, {s} left {o}."],
             ["Which band does {p} play in now?", "What band is {p} in now?"]),
    "daughter": (["{p}'s daughter is called {v}.", "{p} had a baby girl, they named her {v}."],
                 ["What is {p}'s daughter called?", "What's the name of {p}'s daughter?"], "word", None, None),
    "code": (["The door code for {p}'s workshop is {v}.", "To get into {p}'s workshop you type {v} at the door."],
             ["What is the door code for {p}'s workshop?", "Which code opens {p}'s workshop?"], "number",
             ["{p} changed the workshop code: it's {n} now, not {o}.",
              "New code for {p}'s workshop: {n}. The old {o} doesn't work anymore."],
             ["What is the door code for {p}'s workshop now?", "Which code opens {p}'s workshop now?"]),
    "cafe": (["{p} runs a little café called {v}.", "{p} opened a café, it's called {v}."],
             ["What is the name of {p}'s café?", "Which café does {p} run?"], "word", None, None),
    "tutor": (["{p} takes violin lessons from a teacher named {v}."],
              ["Who teaches {p} the violin?", "What's the name of {p}'s violin teacher?"], "word", None, None),
    "horse": (["{p} rides a horse called {v} every weekend."],
              ["What is the name of the horse {p} rides?", "Which horse does {p} ride?"], "word", None, None),
    "sailboat": (["{p} keeps a sailboat named {v} at the marina."],
                 ["What is {p}'s sailboat called?", "What's the name of {p}'s boat?"], "word", None, None),
    "spouse": (["{p} is married to someone called {v}.", "{p}'s husband is called {v}."],
               ["Who is {p} married to?", "What's the name of {p}'s husband?"], "word", None, None),
}

# the assistant decides: (the user's request, the assistant's replies, probes); {t} a thing, {v} the value
ASSIST = [
    (["Can you suggest a name for my new {t}?", "I just got a {t}. What should I call it?"],
     ["How about {v}? It has a friendly ring to it.", "I'd go with {v}.", "{v} would suit a {t} nicely."],
     ["What name did you suggest for my {t}?", "Which name did you come up with for my {t}?"],
     ["kitten", "puppy", "hamster", "goldfish", "tortoise", "parrot", "rabbit", "ferret"]),
    (["Pick a restaurant for our {t}, somewhere we haven't been.", "Where should we go for the {t}? You decide."],
     ["Go with {v}, the place by the river.", "Book a table at {v}.", "Let's say {v}, it's quiet enough to talk."],
     ["Which restaurant did you pick for the {t}?", "Where did you suggest we go for the {t}?"],
     ["team dinner", "anniversary dinner", "birthday lunch", "reunion"]),
    (["What should I cook for the {t}?", "I need a dish for the {t}. Any idea?"],
     ["Make {v}, a baked dish that travels well.", "Try {v}; it's easy and everyone likes it."],
     ["What dish did you suggest for the {t}?", "What did you tell me to cook for the {t}?"],
     ["potluck", "picnic", "office party", "family lunch"]),
    (["Help me plan my {t}: which town should I visit first?", "I'm planning a {t}. Where should I start?"],
     ["Start in {v}, then head along the coast.", "Begin in {v}; the rest follows on nicely from there."],
     ["Which town did you say I should visit first on my {t}?", "Where did you suggest I start my {t}?"],
     ["road trip", "cycling tour", "rail holiday"]),
    (["Our {t} needs a name. Can you come up with one?", "Give our {t} a name, please."],
     ["How about the {v} Club?", "Call it {v}.", "I suggest {v}."],
     ["What name did you come up with for our {t}?", "What did you suggest calling our {t}?"],
     ["quiz team", "book club", "running group", "garden project"]),
    (["I'm writing a story. Name the {t} for me.", "Invent a name for the {t} in my story."],
     ["Call the {t} {v}.", "The {t} could be named {v}."],
     ["What did you name the {t} in my story?", "Which name did you give the {t} in my story?"],
     ["villain", "wizard", "ship's captain", "talking fox"]),
    (["What should I title my {t}?", "I need a title for my {t}. Any ideas?"],
     ["Title it {v}.", "How about {v}? It's short and catchy.", "I'd call it {v}."],
     ["What title did you suggest for my {t}?", "What did you say I should call my {t}?"],
     ["podcast", "photo album", "short film", "blog"]),
    (["Give my {t} a nickname, something fun.", "Everyone in the group has a nickname except my {t}. Pick one."],
     ["Let's go with {v}.", "Call her {v}, it suits her.", "{v}, definitely."],
     ["What nickname did you come up with for my {t}?", "Which nickname did you pick for my {t}?"],
     ["sister", "neighbour", "tennis partner"]),
    (["Name our new {t} for us.", "Our {t} needs a name that's not boring."],
     ["Name it {v}.", "Go with {v}, nobody else will have it."],
     ["What name did you give our {t}?", "What did you suggest we name our {t}?"],
     ["wifi network", "group chat", "family calendar"]),
    (["Pick a four-digit PIN for my new {t}, I can't decide.", "Choose a code for my {t}."],
     ["Use {v}.", "How about {v}? Easy to remember."],
     ["Which code did you pick for my {t}?", "What PIN did you choose for my {t}?"],
     ["locker", "suitcase lock", "garage door"]),
]

# requests in everyday shapes: what goes with a meal, "any good X for", a plan, what X should be, a child's need
ASSIST_EVERYDAY = [
    (["Which {t} goes with the lamb tonight?", "What {t} would go well with the lamb?"],
     ["A bottle of {v} would pair beautifully.", "I'd pour a glass of {v} with it."],
     ["Which {t} did you recommend with the lamb?", "What {t} did you suggest for dinner?"], ["wine", "cider"]),
    (["Any good {t} for the flight?", "Any good {t} for a long train ride?"],
     ["You might enjoy {v}.", "Try {v}, it's a great pick."],
     ["Which {t} did you recommend for my journey?", "What {t} did you suggest for the trip?"],
     ["book", "podcast", "audiobook"]),
    (["Plan my {t} please.", "Can you plan my {t}?"],
     ["Start at the {v} Museum, then lunch by the canal.", "Morning: the {v} Gardens. Afternoon: a walk by the river."],
     ["Where did you suggest I start my {t}?", "What did you plan first for my {t}?"],
     ["Saturday", "day off", "afternoon in town"]),
    (["What should my {t} be?", "What should I use as my {t}?"],
     ["Try {v}.", "Use {v}, it's easy to remember."],
     ["What did you suggest for my {t}?", "What {t} did you come up with?"], ["wifi password", "username"]),
    (["My daughter wants a name for her {t}.", "My daughter needs a name for her new {t}."],
     ["How about {v}?", "She could call it {v}."],
     ["What name did you suggest for my daughter's {t}?", "What did you suggest calling my daughter's {t}?"],
     ["imaginary friend", "teddy bear", "hamster"]),
]
ASSIST_TABLES = {"written": ASSIST, "everyday": ASSIST_EVERYDAY}


class Inventory:
    """Invented values that never contain one another (a probe's answer matches nothing else)."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def _fresh(self, make) -> str:
        while True:
            value = make()
            low = value.lower()
            if not any(low in u or u in low for u in self.used):
                self.used.add(low)
                return value

    def word(self) -> str:
        return self._fresh(lambda: "".join(self.rng.sample(SYLLABLES, self.rng.choice([2, 2, 3]))).capitalize())

    def number(self, digits: int = 4) -> str:
        return self._fresh(lambda: str(self.rng.randrange(10 ** (digits - 1), 10 ** digits)))

    def value(self, kind: str) -> str:
        return {"word": self.word, "number": self.number, "room": lambda: self.number(3),
                "person": lambda: f"{self.word()} {self.word()}"}[kind]()

    def person(self) -> tuple[str, str]:
        return f"{self.word()} {self.word()}", self.rng.choice(["she", "he"])


FOLLOW_UPS = [("Perfect, thank you!", "You're welcome!"), ("Love it, let's go with that.", "Glad you like it!"),
              ("Hmm, okay, I'll think about it.", "Sure, take your time."),
              ("Great, that settles it.", "Happy to help.")]
STARTS_LOWER = ("My ", "Our ", "The ", "To ", "Nothing ", "Sorry", "Actually", "Quick ", "Turns ", "New ", "We ",
                "You ", "Me and ", "If ", "Been ", "Did ", "Scratch ", "Not ")
MIX = {"user": 4, "assistant": 3, "update": 3, "multi": 2, "long": 1}


def with_prefix(prefix: str, sentence: str) -> str:
    if prefix and sentence.startswith(STARTS_LOWER):
        sentence = sentence[0].lower() + sentence[1:]
    return prefix + sentence


class Maker:
    """One file's cases: one user (first-person relations once each), fresh values throughout."""

    def __init__(self, seed: int, updates: int, first_table: dict = FIRST, assist: list = ASSIST,
                 own_updates: float | None = None):
        self.rng = random.Random(seed)
        self.inv = Inventory(self.rng)
        self.first_table, self.assist_table = first_table, assist
        self.own_updates = 0.4 if own_updates is None else own_updates
        first = list(first_table)
        self.rng.shuffle(first)
        correctable = [k for k in first if first_table[k][3]]
        # a third of the corrections are the user's own, or the share asked for
        self.first_updates = correctable[: max(1, updates // 3 if own_updates is None else round(updates * own_updates))]
        self.first = [k for k in first if k not in self.first_updates]
        self.assist = [(i, t) for i, a in enumerate(assist) for t in a[3]]
        self.rng.shuffle(self.assist)

    def new_chat(self) -> None:
        """A fresh deck of small talk: no line comes twice in one chat."""
        self.deck = self.rng.sample(SMALL_TALK, len(SMALL_TALK))

    def talk(self, k: int) -> list[dict]:
        pairs = [self.deck.pop() for _ in range(k)]
        return [m for u, a in pairs for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]

    def around(self, core: list[dict], before: tuple[int, int] = (0, 2), after: tuple[int, int] = (0, 2)) -> list[dict]:
        """The core exchange(s) among small talk (at least one exchange in all)."""
        b, a = self.rng.randint(*before), self.rng.randint(*after)
        if a + b == 0:
            a = 1
        talk = self.talk(a + b)
        return talk[: 2 * b] + core + talk[2 * b:]

    def said(self, sentence: str, prefix: bool = True) -> list[dict]:
        """A user turn telling `sentence` (now and then after a line of small talk) and an acknowledgement."""
        text = with_prefix(self.rng.choice(PREFIXES) if prefix else "", sentence)
        if prefix and self.rng.random() < 0.3:  # after a line of small talk, in the same turn
            line = self.deck.pop()[0]
            text = f"{line} Anyway, {text[0].lower()}{text[1:]}" if text.startswith(STARTS_LOWER) else f"{line} {text}"
        return [{"role": "user", "content": text}, {"role": "assistant", "content": self.rng.choice(ACKS)}]

    def fact(self, table: dict, key: str, **who) -> tuple[str, str, list[str]]:
        """A told sentence, its value and the relation's probe questions."""
        tells, questions, kind = table[key][:3]
        value = self.inv.value(kind)
        return self.rng.choice(tells).format(v=value, **who), value, [q.format(**who) for q in questions]

    def probes(self, questions: list[str], answer: str, k: int = 2, reject: str | None = None) -> list[dict]:
        out = [{"question": q, "answers": [answer]} for q in self.rng.sample(questions, min(k, len(questions)))]
        return [{**p, "reject": [reject]} for p in out] if reject else out

    def user(self) -> dict:
        self.new_chat()
        key = self.first.pop()
        sentence, value, questions = self.fact(self.first_table, key)
        return {"category": "user", "relation": f"my {key}", "messages": self.around(self.said(sentence)),
                "probes": self.probes(questions, value)}

    def assistant(self) -> dict:
        self.new_chat()
        i, thing = self.assist.pop()
        requests, replies, questions, _ = self.assist_table[i]
        value = self.inv.number() if "PIN" in requests[0] else self.inv.word()
        core = [{"role": "user", "content": self.rng.choice(requests).format(t=thing)},
                {"role": "assistant", "content": self.rng.choice(replies).format(t=thing, v=value)}]
        if self.rng.random() < 0.5:
            u, a = self.rng.choice(FOLLOW_UPS)
            core += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        return {"category": "assistant", "relation": f"suggested {thing}", "messages": self.around(core),
                "probes": self.probes([q.format(t=thing) for q in questions], value)}

    def third(self, keys=None) -> tuple[str, str, str, list[str], dict]:
        """A third-person fact about a new person: (relation, sentence, value, questions, who)."""
        key = self.rng.choice(keys or list(THIRD))
        person, pronoun = self.inv.person()
        who = {"p": person, "s": pronoun}
        sentence, value, questions = self.fact(THIRD, key, **who)
        return key, sentence, value, questions, who

    def update(self) -> tuple[dict, dict]:
        """A fact and its correction (the correction's night is set by the caller)."""
        if self.first_updates and self.rng.random() < self.own_updates:
            key, table, who = self.first_updates.pop(), self.first_table, {}
            sentence, old, questions = self.fact(table, key)
            relation = f"my {key}"
        else:
            key, sentence, old, questions, who = self.third([k for k in THIRD if THIRD[k][3]])
            table, relation = THIRD, key
        corrections, new_questions = table[key][3], table[key][4]
        new = self.inv.value(table[key][2])
        correction = self.rng.choice(corrections).format(o=old, n=new, **who)
        self.new_chat()
        original = {"category": "update", "relation": relation, "messages": self.around(self.said(sentence)),
                    "probes": self.probes(questions, old, k=self.rng.choice([1, 2]))}
        self.new_chat()
        fixed = {"category": "update", "relation": relation, "messages": self.around(self.said(correction)),
                 "probes": self.probes([q.format(**who) for q in new_questions], new, reject=old)}
        return original, fixed

    def multi(self) -> dict:
        self.new_chat()
        first, second = self.rng.sample(list(THIRD), 2)
        a, b = self.third([first]), self.third([second])
        messages = self.said(a[1]) + self.talk(self.rng.randint(1, 2)) + self.said(b[1])
        messages = self.around(messages, (0, 1), (0, 1))
        probes = self.probes(a[3], a[2], k=1) + self.probes(b[3], b[2], k=1)
        return {"category": "multi", "relation": f"{first}+{second}", "messages": messages, "probes": probes}

    def long(self) -> dict:
        self.new_chat()
        key, sentence, value, questions, _ = self.third()
        messages = self.talk(self.rng.randint(0, 1)) + self.said(sentence) + self.talk(self.rng.randint(5, 8))
        return {"category": "long", "relation": key, "messages": messages, "probes": self.probes(questions, value)}


def make(seed: int, nights: int = 3, mix: dict[str, int] | None = None, first: str = "written",
         assist: str = "written", own_updates: float | None = None) -> list[dict]:
    """The cases of `nights` nights, night by night, shuffled within a night, with opaque ids; the user's own
    facts from `FIRST_TABLES[first]`, the requests from `ASSIST_TABLES[assist]`; `own_updates` the share of
    corrections that are of the user's own facts (while any is left to correct)."""
    mix = {**MIX, **(mix or {})}
    maker = Maker(seed, mix["update"] * max(1, nights - 1), FIRST_TABLES[first], ASSIST_TABLES[assist], own_updates)
    by_night: dict[int, list[dict]] = {n: [] for n in range(1, nights + 1)}
    for n in range(1, nights + 1):
        for _ in range(mix["user"]):
            by_night[n].append(maker.user())
        for _ in range(mix["assistant"]):
            by_night[n].append(maker.assistant())
        for _ in range(mix["update"] if n < nights else 0):
            original, fixed = maker.update()
            original["fixed_by"] = fixed
            by_night[n].append(original)
            by_night[maker.rng.randint(n + 1, nights)].append(fixed)
        for _ in range(mix["multi"]):
            by_night[n].append(maker.multi())
        for _ in range(mix["long"]):
            by_night[n].append(maker.long())
    cases = []
    for n, night_cases in by_night.items():
        maker.rng.shuffle(night_cases)
        for case in night_cases:
            case["night"] = n
            case["id"] = f"dev-s{seed}-{len(cases):03d}"
            cases.append(case)
    return [_case(c) for c in cases]


def _case(c: dict) -> dict:
    """A case in format v2's key order; the pairing of an update through the ids."""
    out = {"id": c["id"], "night": c["night"], "namespace": "default", "category": c["category"],
           "relation": c["relation"]}
    if "fixed_by" in c:
        out["superseded_by"] = c["fixed_by"]["id"]
        c["fixed_by"]["supersedes"] = c["id"]
    if "supersedes" in c:
        out["supersedes"] = c["supersedes"]
    return {**out, "episode": {"messages": c["messages"]}, "probes": c["probes"]}


def parse_mix(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, text.split(",")):
        name, _, count = item.partition("=")
        if name not in MIX:
            raise argparse.ArgumentTypeError(f"unknown category {name!r} (one of {', '.join(MIX)})")
        out[name] = int(count)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--mix", type=parse_mix, default={}, metavar="CAT=N,...",
                        help="cases per night per category (default "
                        + ",".join(f"{k}={v}" for k, v in MIX.items()) + ")")
    parser.add_argument("--first", choices=sorted(FIRST_TABLES), default="written",
                        help="the user's own facts: one-sentence tellings (written), loose speech (spoken) or "
                        "everyday chat with corrections in other words (everyday)")
    parser.add_argument("--assist", choices=sorted(ASSIST_TABLES), default="written",
                        help="the requests the assistant answers: ASSIST (written) or ASSIST_EVERYDAY (everyday)")
    parser.add_argument("--own-updates", type=float, default=None,
                        help="share of corrections that correct the user's own facts (default: a third of them "
                        "are, each drawn at 0.4)")
    parser.add_argument("--out", type=Path, default=None, help="JSONL file (default: stdout)")
    args = parser.parse_args(argv)
    text = "".join(json.dumps(c) + "\n" for c in make(args.seed, args.nights, args.mix, args.first, args.assist,
                                                       args.own_updates))
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
