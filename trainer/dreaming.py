"""Dreaming: the current model, with an episode in its context, answers cheap questions about it.

Questions are relation-agnostic: templated from the names/entities of the episode ("What do you know
about X?") and, optionally, written by the model itself. Answers come from the **in-context teacher**
(the model with the episode in context), the learning signal the eval README calls for; with
`quote_answers` each question is also answered with the user's own sentences about it, a restatement
the teacher does not have to write but still scores (its logits on it are the training target). Dreams
are scored by teacher agreement (overlap of the answer with what the *user* said, so an echoed "Noted!"
counts for nothing, and how much more likely the context makes the answer) and by student loss (the
answer's loss without context: what the model does not know yet); the top-k plus a few random ones are
kept, and a few are held out as tonight's probes for the eval gate. Only an episode's `messages` (and
id) are read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch

from trainer.chat import Messages, answer_ids, continuation_logits, decode, generate, render
from trainer.config import SleepConfig
from trainer.experts import adapters
from trainer.losses import token_logprobs

TEMPLATES = (
    "Repeat what I told you about {x}.",
    "What do you know about {x}?",
    "What's new with {x}?",
    "Remind me what I said about {x}.",
    "Summarize what I told you about {x} in one sentence.",
    "Tell me about {x}.",
    "What did I tell you about {x}?",
    "What happened with {x}?",
)
# asked once per episode: the in-context teacher copies what was said (small models copy well)
RESTATE = "Repeat exactly what I just told you, word for word."
# cloze prompts: the start of something the user said; the teacher, seeing it all, says the rest
CLOZE = ('Continue what I told you: "{p} ..."', "Repeat what I told you about {p}.")
CLOZE_CUTS = (0.5, 0.35, 0.65)
QUESTION_PROMPT = (
    "Write one short question that can be answered from what I told you in this conversation. "
    "Reply with the question only."
)
STOPWORDS = set(
    """a an the and or but if of in on at to for from by with about as is are was were be been being am
    i me my mine you your yours he him his she her hers it its we us our they them their this that these
    those there here what which who whom whose when where why how do does did done have has had having
    not no yes so very just also too can could will would shall should may might must than then now
    new one some any all into over under up down out again more most such only own same other told tell
    said say know remind repeat summarize sentence happened what's that's it's i'm i'll i've you're
    thanks thank got noted lovely hear great good okay ok sure really quick update heard did""".split()
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
_NAME = re.compile(r"(?:[A-Z][\w\-]+)(?:\s+[A-Z][\w\-]+)*")


@dataclass
class Dream:
    """One question/answer pair about an episode, with the scores that chose it."""

    episode_id: str
    question: str
    answer: str
    source: str = "template"  # template | model | quote (the user's own sentences, teacher-scored)
    held_out: bool = False  # a probe of the eval gate, never trained on
    key_terms: list[str] = field(default_factory=list)  # episode words the teacher's answer contains
    agreement: float = 0.0
    student_loss: float = 0.0
    teacher_loss: float = 0.0
    score: float = 0.0
    night: str | None = None
    recalled: bool | None = None  # probes: whether the model that learned it recalled it
    specific: bool = True  # the question singles out its episode (`identifies`): only such a one tests it
    cloze: bool = False  # the prompt is the start of a user sentence to continue, not a question a user asks
    # the in-context teacher's logits on the answer (len, V), kept from scoring for training; not saved
    teacher_logits: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "teacher_logits"}

    @classmethod
    def from_dict(cls, data: dict) -> Dream:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def episode_messages(episode: dict) -> Messages:
    """The episode's chat, without any system message (the serving prompt is added at render time)."""
    return [{"role": m["role"], "content": str(m["content"])} for m in episode["messages"] if m["role"] != "system"]


def fitted_messages(tokenizer, episode: dict, config: SleepConfig) -> Messages:
    """The episode's last messages that fit `max_seq_len` with room for a question and an answer;
    the oldest kept message is cut from its start when even it alone is too long."""
    budget = config.max_seq_len - config.dream_max_new_tokens - 48
    kept: Messages = []
    used = 0
    for message in reversed(episode_messages(episode)):
        n = len(tokenizer.encode(message["content"], add_special_tokens=False)) + 4
        if used + n > budget:
            room = budget - used - 4
            if room > 8 or not kept:
                ids = tokenizer.encode(message["content"], add_special_tokens=False)[-max(room, 8):]
                kept.append({"role": message["role"], "content": tokenizer.decode(ids)})
            break
        kept.append(message)
        used += n
    return kept[::-1]


def episode_text(episode: dict) -> str:
    return "\n".join(m["content"] for m in episode_messages(episode))


def told_text(episode: dict) -> str:
    """What the user said: the information of an episode. The assistant's turns are the model's own
    words (an acknowledgement, usually); a dream that echoes them teaches nothing."""
    said = [m["content"] for m in episode_messages(episode) if m["role"] == "user"]
    return "\n".join(said) if said else episode_text(episode)


def statements(episode: dict) -> list[str]:
    """The user's sentences, in order."""
    return [s.strip() for m in episode_messages(episode) if m["role"] == "user"
            for s in re.split(r"(?<=[.!?])\s+|\n+", m["content"]) if s.strip()]


def quote(episode: dict, question: str, tokenizer, max_tokens: int) -> str:
    """The user's own sentences about what a question names (all of them when it names none), cut to
    `max_tokens`: a restatement the in-context teacher scores token by token without having to write it
    (a 135M teacher often replies "Noted!" instead of restating)."""
    asked = words(question) - _PROMPT_WORDS
    said = statements(episode)
    about = [s for s in said if words(s) & asked] or said
    ids = tokenizer.encode(" ".join(about), add_special_tokens=False)
    return tokenizer.decode(ids[:max_tokens]).strip()


def _normal(word: str) -> str:
    """A word as `words` and `key_term_spans` compare it: lower-cased, possessive stripped."""
    return word.lower().removesuffix("'s").strip("'-")


def words(text: str) -> set[str]:
    """Lower-cased content words (no stop words, possessives stripped)."""
    out = set()
    for w in _WORD.findall(text):
        w = _normal(w)
        if len(w) >= 2 and w not in STOPWORDS:
            out.add(w)
    return out


def key_term_spans(text: str, key_terms: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of the words of `text` that `words` reads as one of `key_terms`."""
    keys = set(key_terms)
    return [match.span() for match in _WORD.finditer(text) if _normal(match.group()) in keys]


_PROMPT_WORDS = words(" ".join(TEMPLATES + CLOZE + (RESTATE, QUESTION_PROMPT)))


def entities(text: str, limit: int) -> list[str]:
    """Names in a text, relation-agnostic: capitalised word runs; multi-word names first.

    A single capitalised word that starts a sentence is ignored (it is usually just capitalised).
    """
    found: list[tuple[int, str]] = []
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", text):
        for match in _NAME.finditer(sentence):
            name = match.group(0).removesuffix("'s")
            parts = name.split()
            if match.start() == 0 and parts[0].lower() in STOPWORDS | {"remember", "did", "my", "the", "quick"}:
                parts = parts[1:]
            if not parts or (match.start() == 0 and len(parts) == 1 and len(name.split()) == 1):
                continue
            name = " ".join(parts)
            if name.lower() in STOPWORDS:
                continue
            found.append((len(parts), name))
    ordered = [n for _, n in sorted(found, key=lambda t: -t[0])]
    return list(dict.fromkeys(ordered))[:limit]


def agreement(answer: str, episode: str, question: str) -> tuple[float, list[str]]:
    """F1 between the answer's content words and the episode's (question words excluded).

    High when the teacher restates what was said, low when it makes things up or refuses.
    Returns the score and the key terms (episode words the answer contains).
    """
    source = words(episode) - words(question)
    said = words(answer) - words(question)
    common = sorted(source & said)
    if not common:
        return 0.0, []
    recall, precision = len(common) / len(source), len(common) / len(said)
    return 2 * recall * precision / (recall + precision), common


def distinctive(terms: Sequence[str], episode_id: str, told: dict[str, str]) -> list[str]:
    """The terms that no other episode's user said: what a reply must contain to show it recalls *this*
    episode, not only its topic ("parrot", "harbour", "studio" are said in many)."""
    elsewhere = set().union(*(words(text) for eid, text in told.items() if eid != episode_id))
    return [t for t in terms if t not in elsewhere]


def identifies(question: str, episode_id: str, told: dict[str, str]) -> bool:
    """Whether the episode's words a question names are not all said in any other episode (the pair
    "Voska Belshi" singles out one person even when another is called Voska). One that does not asks the
    same of several episodes ('Continue what I told you: "The door code ..."'): it still trains (its answer
    states the whole fact), but it cannot test one memory, so it is never a probe."""
    asked = (words(question) - _PROMPT_WORDS) & words(told[episode_id])
    return bool(asked) and not any(asked <= words(text) for eid, text in told.items() if eid != episode_id)


def key_cloze_questions(episode: dict, episode_id: str, told: dict[str, str]) -> list[str]:
    """Cloze prompts cut where a user statement's value begins, before its last run of words no other
    episode says: 'Continue what I told you: "Quick update: Mirpa Lovos's new parrot is named ..."'. The
    prompt names the person and the kind of fact together and leaves out what is told of them, so the
    answer is bound to that person where the kind of fact is shared with other people (the fixed cuts of
    `cloze_questions` often stop inside the name or past the value)."""
    out: list[str] = []
    for sentence in statements(episode):
        tokens = sentence.split()
        own = set(distinctive(sorted(words(sentence)), episode_id, told))
        marked = [i for i, t in enumerate(tokens) if words(t) & own]
        if not marked:
            continue
        start = marked[-1]
        while start > 0 and start - 1 in marked:
            start -= 1
        if start >= 3:
            out.append(CLOZE[0].format(p=" ".join(tokens[:start]).rstrip(",;:")))
    return list(dict.fromkeys(out))


def answer_segments(dream: Dream) -> list[tuple[str, str]]:
    """The answer cut into ("text" | "name" | "value", text) runs: the value is what the answer adds that
    only its episode says (`key_terms`), the name what the question already names; the rest is how the
    kind of fact is said ("Quick update: | Mirpa Lovos's | new parrot is named | Lodun!")."""
    value = set(dream.key_terms)
    named = words(dream.question) - _PROMPT_WORDS
    segments: list[tuple[str, str]] = []
    for token in dream.answer.split():
        found = words(token)
        kind = "value" if found & value else "name" if found & named else "text"
        if segments and segments[-1][0] == kind:
            segments[-1] = (kind, f"{segments[-1][1]} {token}")
        else:
            segments.append((kind, token))
    return segments


def confusion_key(dream: Dream) -> tuple | None:
    """What two people's dreams share when they ask and answer the same kind of fact: the question with
    its names masked and the answer's text with its name and value cut out. None when nothing but names
    and values would be left to say which kind of fact it is (a bare "Lodun!" to "What's new with _?")."""
    segments = answer_segments(dream)
    if not any(kind == "value" for kind, _ in segments):
        return None
    question = _NAME.sub("_", dream.question)
    template = tuple(text if kind == "text" else f"<{kind}>" for kind, text in segments)
    said = words(question + " " + " ".join(t for t in template if not t.startswith("<")))
    return (question, template) if said - _PROMPT_WORDS else None


def rival_answers(tonight: Sequence[Dream], earlier: Sequence[Dream] = ()) -> list[tuple[Dream, str]]:
    """(own dream, rival answer) pairs: one person's question answered in their own words with another
    person's value of the same kind of fact put in ("Quick update: Mirpa Lovos's new parrot is named
    Kalo!"), the confusion a night's training must not teach (a later night's parrot name given for an
    earlier night's person). Dreams pair when `confusion_key` matches across episodes and the values
    differ, at least one of the two tonight's: tonight's people against each other and against earlier
    nights', both ways. Held-out probes and ungrounded dreams take no part."""
    groups: dict[tuple, list[tuple[Dream, bool, list[tuple[str, str]]]]] = {}
    for fresh, dreams in ((True, tonight), (False, earlier)):
        for d in dreams:
            key = None if d.held_out or not d.key_terms else confusion_key(d)
            if key is not None:
                groups.setdefault(key, []).append((d, fresh, answer_segments(d)))
    pairs: dict[tuple[str, str, str], tuple[Dream, str]] = {}
    for group in groups.values():
        for own, own_fresh, segments in group:
            for rival, rival_fresh, rival_segments in group:
                if own.episode_id == rival.episode_id or not (own_fresh or rival_fresh):
                    continue
                values = iter(text for kind, text in rival_segments if kind == "value")
                answer = " ".join(next(values) if kind == "value" else text for kind, text in segments)
                if words(answer) != words(own.answer):
                    pairs.setdefault((own.question, own.answer, answer), (own, answer))
    return list(pairs.values())


def template_questions(episode: dict, config: SleepConfig, rng: random.Random) -> list[str]:
    """The fixed questions about an episode: restate, templates about its names (no cloze prompts)."""
    names = entities(episode_text(episode), config.entities_per_episode)
    questions = [RESTATE] if config.restate else []
    for name in names:
        chosen = list(TEMPLATES[: max(config.template_questions, 0)])
        questions += [t.format(x=name) for t in chosen]
    return questions


def cloze_questions(episode: dict, limit: int) -> list[str]:
    """Relation-agnostic prompts made of the start of the user's last statements, cut at word positions."""
    out: list[str] = []
    said = [m["content"] for m in episode_messages(episode) if m["role"] == "user"][::-1]
    sentences = [s for text in said for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    for cut in CLOZE_CUTS:
        for sentence in sentences:
            words_ = sentence.split()
            prefix = " ".join(words_[: max(2, round(len(words_) * cut))]).rstrip(",;:")
            out += [t.format(p=prefix) for t in CLOZE]
    return list(dict.fromkeys(out))[:limit]


def model_questions(model, tokenizer, episodes: Sequence[dict], config: SleepConfig) -> list[list[str]]:
    """Questions the in-context model writes about each episode (sampled; kept if they look like one)."""
    if config.model_questions == 0:
        return [[] for _ in episodes]
    prompts, owners = [], []
    for i, episode in enumerate(episodes):
        chat = fitted_messages(tokenizer, episode, config) + [{"role": "user", "content": QUESTION_PROMPT}]
        for _ in range(config.model_questions):
            prompts.append(render(tokenizer, chat, config.system_prompt))
            owners.append(i)
    out = generate(model, tokenizer, prompts, max_new_tokens=config.question_max_new_tokens,
                   temperature=config.dream_temperature, generator_seed=config.seed,
                   batch_size=config.generation_batch_size)
    questions: list[list[str]] = [[] for _ in episodes]
    for i, ids in zip(owners, out):
        text = decode(tokenizer, ids).split("\n")[0].strip().strip('"')
        if text.endswith("?") and 4 <= len(text.split()) <= 30 and words(text) & words(episode_text(episodes[i])):
            questions[i].append(text)
    return [list(dict.fromkeys(q)) for q in questions]


def dream(
    model,
    tokenizer,
    episodes: Sequence[dict],
    config: SleepConfig,
    *,
    night: str | None = None,
    progress=None,
    writer: Sequence[str] | None = None,
) -> list[Dream]:
    """Write, score and select tonight's dreams. `model` is the current model (teacher and student).

    `writer`: adapters that write the answers instead (the SEAL dream writer, `trainer.seal`); the
    questions, the scores and the cached teacher logits stay the current model's.
    A question that does not single out its episode among tonight's (`identifies`) is marked
    `specific=False`: it trains but is never held out as a probe.
    Returns the kept dreams, the held-out probes among them (`held_out=True`).
    """
    rng = random.Random(config.seed)
    by_id = {str(e.get("id", "")): e for e in episodes}
    told = {eid: told_text(e) for eid, e in by_id.items()}
    written = model_questions(model, tokenizer, episodes, config)
    candidates: list[Dream] = []
    for episode, extra in zip(episodes, written):
        eid = str(episode.get("id", ""))
        for q in template_questions(episode, config, rng):
            candidates.append(Dream(eid, q, "", "template", night=night))
        clozes = cloze_questions(episode, config.cloze_questions)
        if config.key_cloze:
            clozes += key_cloze_questions(episode, eid, told)
        for q in dict.fromkeys(clozes):
            candidates.append(Dream(eid, q, "", "template", night=night, cloze=True))
        for q in extra:
            candidates.append(Dream(eid, q, "", "model", night=night))
    for d in candidates:
        d.specific = identifies(d.question, d.episode_id, told)
    if not candidates:
        return []
    # The in-context teacher answers: greedy first, then samples.
    prompts = [render(tokenizer, fitted_messages(tokenizer, by_id[d.episode_id], config)
                      + [{"role": "user", "content": d.question}], config.system_prompt) for d in candidates]
    answered: list[Dream] = []
    for k in range(config.answers_per_question):
        with adapters(model, writer) if writer else nullcontext():
            out = generate(model, tokenizer, prompts, max_new_tokens=config.dream_max_new_tokens,
                           temperature=0.0 if k == 0 else config.dream_temperature,
                           generator_seed=config.seed + k, batch_size=config.generation_batch_size)
        for d, ids in zip(candidates, out):
            text = decode(tokenizer, ids)
            if text:
                answered.append(Dream(d.episode_id, d.question, text, d.source, night=night, specific=d.specific,
                                      cloze=d.cloze))
        if progress:
            progress("dream", k + 1, config.answers_per_question, None)
    if config.quote_answers:
        answered += [Dream(d.episode_id, d.question, quote(by_id[d.episode_id], d.question, tokenizer,
                                                             config.dream_max_new_tokens), "quote", night=night,
                           specific=d.specific, cloze=d.cloze) for d in candidates]
    score(model, tokenizer, answered, by_id, config)
    return select(answered, config, rng)


@torch.no_grad()
def score(model, tokenizer, dreams: list[Dream], episodes: dict[str, dict], config: SleepConfig,
          batch_size: int = 8) -> None:
    """Fill agreement, teacher loss (with the episode) and student loss (without it) of each dream."""
    pad = tokenizer.pad_token_id
    told = {eid: told_text(e) for eid, e in episodes.items()}
    for d in dreams:
        d.agreement, d.key_terms = agreement(d.answer, told[d.episode_id], d.question)
        d.key_terms = distinctive(d.key_terms, d.episode_id, told)
    for start in range(0, len(dreams), batch_size):
        chunk = dreams[start:start + batch_size]
        conts = [answer_ids(tokenizer, d.answer) for d in chunk]
        with_ctx = [render(tokenizer, fitted_messages(tokenizer, episodes[d.episode_id], config)
                           + [{"role": "user", "content": d.question}], config.system_prompt) for d in chunk]
        without = [render(tokenizer, [{"role": "user", "content": d.question}], config.system_prompt) for d in chunk]
        for prompts, attr in ((with_ctx, "teacher_loss"), (without, "student_loss")):
            logits, targets, mask = continuation_logits(model, prompts, conts, pad)
            nll = -(token_logprobs(logits, targets) * mask).sum(-1) / mask.sum(-1)
            for row, (d, value) in enumerate(zip(chunk, nll.tolist())):
                setattr(d, attr, value)
                if attr == "teacher_loss":
                    d.teacher_logits = logits[row, mask[row]].to("cpu", torch.bfloat16)
    for d in dreams:
        # grounded in the episode, supported by the context, and not yet known without it
        pmi = d.student_loss - d.teacher_loss
        d.score = d.agreement + 0.1 * max(min(pmi, 5.0), -5.0)


def select(dreams: list[Dream], config: SleepConfig, rng: random.Random) -> list[Dream]:
    """Per episode: hold out probes, keep the top-k by score plus b random others."""
    kept: list[Dream] = []
    by_episode: dict[str, list[Dream]] = {}
    for d in dreams:
        by_episode.setdefault(d.episode_id, []).append(d)
    for group in by_episode.values():
        # per question the best-scored answer the teacher wrote, and the quote: two phrasings of a fact
        best: dict[tuple[str, bool], Dream] = {}
        for d in group:
            key = (d.question, d.source == "quote")
            if key not in best or d.score > best[key].score:
                best[key] = d
        group = sorted(best.values(), key=lambda d: -d.score)
        # the best-grounded dream always trains; probes come from the rest
        grounded = [d for d in group[1:] if d.key_terms and d.specific and d.question != group[0].question]
        probes = rng.sample(grounded, min(config.held_out_per_episode, len(grounded)))
        for p in probes:
            p.held_out = True
        asked = {p.question for p in probes}  # a probe's question is never trained, in any phrasing
        rest = [d for d in group if d.question not in asked and d.agreement > 0]
        top, others = rest[: config.keep_top_k], rest[config.keep_top_k:]
        kept += probes + top + rng.sample(others, min(config.keep_random, len(others)))
    training = {id(d) for d in kept if not d.held_out}
    for d in dreams:
        if id(d) not in training:
            d.teacher_logits = None
    return kept
