"""Dreaming: the current model, with an episode in its context, answers cheap questions about it.

Questions are relation-agnostic (`trainer.questions`): templated from the names and the user's own things
an episode mentions, its statements turned into questions and cut into cloze prompts, what the assistant
was asked for, and, optionally, written by the model itself. Answers come from the **in-context
teacher** (the model with the episode, or the window of a long one, in context); with `quote_answers`
each question is also answered with the told sentences about it, a restatement the teacher does not
have to write but still scores (its logits on it are the training target). Dreams are scored by teacher
agreement (overlap of the answer with what the episode *told*, so an echoed "Noted!" counts for nothing,
and how much more likely the context makes the answer) and by student loss (the answer's loss without
context: what the model does not know yet); the top-k plus a few random ones are kept, and a few are
held out as tonight's probes for the eval gate (`trainer.selection`).

Corrections: earlier nights' questions about what an episode names are asked of it again
(`recheck_questions`); one it answers with a new value of the same kind of fact supersedes the earlier
dreams that said the old one (`superseded`): they leave replay, and tonight's answers that still name
the old value are dropped, as are the answers to questions asked again that correct nothing; the old
episode's other questions are answered with the correction (`relearned`). Only an episode's `messages`
(and id) are read.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch

from trainer.chat import Messages, answer_ids, continuation_logits, decode, render
from trainer.config import SleepConfig
from trainer.episodes import episode_windows, quote, told_replies, told_text
from trainer.experts import adapters
from trainer.generation import LOCAL, Generation
from trainer.losses import token_logprobs
from trainer.questions import (
    PROMPT_WORDS,
    QUESTION_PROMPT,
    about_something,
    asks_what_you_said,
    cloze_questions,
    distinctive,
    handle_questions,
    identifies,
    key_cloze_questions,
    template_questions,
)
from trainer.selection import select
from trainer.told_statements import rule_questions
from trainer.corrections import (
    Retirement,
    as_it_holds_now,
    asked_now,
    dream_key,
    recheck_questions,
    relearned,
    superseded,
)
from trainer.text import sentences, values, words
from trainer.tool_turns import names_a_call

@dataclass
class Dream:
    """One question/answer pair about an episode, with the scores that chose it."""

    episode_id: str
    question: str
    answer: str
    source: str = "template"  # template | model | quote (told sentences, teacher-scored) | recheck (an earlier question)
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
    window: int = 0  # which window of its episode (`episodes.windows`) is the teacher's context
    # the in-context teacher's logits on the answer (len, V), kept from scoring for training; not saved
    teacher_logits: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "teacher_logits"}

    @classmethod
    def from_dict(cls, data: dict) -> Dream:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})



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



def grounded_sentences(answer: str, episode: str) -> str:
    """The answer less its sentences that name nothing the episode told: a 135M teacher wraps a right
    value in "I'm sorry for any confusion." or "That's a great name.", and a student trained on the
    wrapping learns to apologise, not the value. A sentence that writes a tool call (a teacher copying
    the note of a call in its context, `names_a_call`) goes too: a night never teaches a call."""
    told = words(episode)
    return " ".join(s for s in sentences(answer) if words(s) & told and not names_a_call(s))


def model_questions(model, tokenizer, views: Sequence[tuple[str, int, Messages]],
                    config: SleepConfig, generation: Generation = LOCAL) -> list[list[str]]:
    """Questions the in-context model writes about each (episode id, window, messages) view (sampled;
    kept if they look like one)."""
    if config.model_questions == 0:
        return [[] for _ in views]
    prompts, owners = [], []
    for i, (_, _, messages) in enumerate(views):
        chat = messages + [{"role": "user", "content": QUESTION_PROMPT}]
        for _ in range(config.model_questions):
            prompts.append(render(tokenizer, chat, config.system_prompt))
            owners.append(i)
    [out] = generation.teacher(model, tokenizer, [prompts], seeds=[config.seed],
                               max_new_tokens=config.question_max_new_tokens, temperature=config.dream_temperature,
                               batch_size=config.generation_batch_size)
    questions: list[list[str]] = [[] for _ in views]
    for i, ids in zip(owners, out):
        text = decode(tokenizer, ids).split("\n")[0].strip().strip('"')
        said = words("\n".join(m["content"] for m in views[i][2]))
        if text.endswith("?") and 4 <= len(text.split()) <= 30 and words(text) & said:
            questions[i].append(text)
    return [list(dict.fromkeys(q)) for q in questions]


def candidates_of(tokenizer, episodes: Sequence[dict], views: dict[str, list[Messages]], told_by_id: dict[str, str],
                  rechecks: dict[str, list[str]], written: list[list[str]], config: SleepConfig,
                  rng: random.Random, night: str | None, values_by_id: dict[str, set[str]] | None = None) -> list[Dream]:
    """Every question of tonight, one unanswered `Dream` each, per episode and window."""
    candidates: list[Dream] = []
    view = 0
    for episode in episodes:
        eid = str(episode.get("id", ""))
        for w, messages in enumerate(views[eid]):
            said = words(told_text({"messages": messages}))

            def add(questions, source="template", cloze=False):
                candidates.extend(Dream(eid, q, "", source, night=night, cloze=cloze, window=w)
                                  for q in dict.fromkeys(questions) if about_something(q, said))
            add(template_questions(messages, config, rng))
            if config.handle_questions:
                add(handle_questions(messages, config.handle_questions))
            if config.statement_questions:
                add(rule_questions(messages, eid, told_by_id, (values_by_id or {}).get(eid, ())))
            clozes = cloze_questions(messages, config.cloze_questions)
            if config.key_cloze:
                clozes += key_cloze_questions(messages, eid, told_by_id)
            add(clozes, cloze=True)
            add(written[view], source="model")
            view += 1
        last = len(views[eid]) - 1  # the newest turns: where a correction usually is
        candidates.extend(Dream(eid, q, "", "recheck", night=night, window=last) for q in rechecks.get(eid, []))
    seen: set[tuple[str, int, str]] = set()
    unique = []
    for d in candidates:  # a question asked twice of one window (a template and a turned statement) once
        if (d.episode_id, d.window, d.question) not in seen:
            seen.add((d.episode_id, d.window, d.question))
            unique.append(d)
    for d in unique:
        d.specific = d.source != "recheck" and identifies(d.question, d.episode_id, told_by_id)
    return unique


@dataclass
class NightDreams:
    """What dreaming returns: tonight's kept dreams (probes among them) and the earlier dreams retired."""

    dreams: list[Dream]
    retired: list[Retirement] = field(default_factory=list)

    def retired_keys(self) -> set[tuple]:
        return {dream_key(r.old) for r in self.retired}


def dream(
    model,
    tokenizer,
    episodes: Sequence[dict],
    config: SleepConfig,
    *,
    night: str | None = None,
    progress=None,
    writer: Sequence[str] | None = None,
    earlier: Sequence[dict] = (),
    generation: Generation = LOCAL,
) -> NightDreams:
    """Write, score and select tonight's dreams. `model` is the current model (teacher and student).

    `writer`: adapters that write the answers instead (the SEAL dream writer, `trainer.seal`); the
    questions, the scores and the cached teacher logits stay the current model's.
    A question that does not single out its episode among tonight's (`identifies`) is marked
    `specific=False`: it trains but is never held out as a probe.
    `earlier`: earlier nights' kept dreams; with `recheck_questions` the ones tonight corrects are retired.
    `generation`: where the teacher's text comes from (`trainer.generation`); the scores always read `model`.
    """
    rng = random.Random(config.seed)
    by_id = {str(e.get("id", "")): e for e in episodes}
    told_by_id = {eid: told_text(e) for eid, e in by_id.items()}
    views = episode_windows(tokenizer, episodes, config)
    flat = [(eid, w, m) for eid in by_id for w, m in enumerate(views[eid])]
    written = model_questions(model, tokenizer, flat, config, generation)
    rechecks = recheck_questions(earlier, told_by_id, config.recheck_questions)
    values_by_id = told_values(tokenizer, told_by_id)
    candidates = candidates_of(tokenizer, episodes, views, told_by_id, rechecks, written, config, rng, night,
                               values_by_id)
    if not candidates:
        return NightDreams([])
    answered = teacher_answers(model, tokenizer, candidates, views, config, night, progress, writer, generation)
    for d in answered:
        d.answer = grounded_sentences(d.answer, told_by_id[d.episode_id])
    answered = [d for d in answered if d.answer]
    if config.quote_answers:
        answered += quotes(tokenizer, candidates, views, config, night)
    for d in answered:
        d.answer = as_it_holds_now(d.answer, d.question)
    score(model, tokenizer, answered, views, told_by_id, config)
    replied_by_id = {eid: told_replies(e) for eid, e in by_id.items()}
    retired = superseded(earlier, answered, told_by_id, replied_by_id)
    answered = corrections_only(answered, retired)
    if retired:
        answered = without_stale(tokenizer, model, answered, retired, views, told_by_id, config, night)
        for r in retired:  # the answer that replaces the old one: tonight's best that names no old value
            if r.new is not None:
                replacing = [d for d in answered if d.question == r.new.question and d.episode_id == r.new.episode_id]
                r.new = max(replacing, key=lambda d: d.score, default=None)
        again = relearned(retired, told_by_id)  # the old episode's other questions, answered anew
        score(model, tokenizer, again, views, told_by_id, config)
        answered += again + corrected_now(model, tokenizer, [r.new for r in retired if r.new is not None] + again,
                                          views, told_by_id, config)
    return NightDreams(select(answered, config, rng, values_by_id), retired)


def corrections_only(answered: Sequence[Dream], retired: Sequence[Retirement]) -> list[Dream]:
    """Tonight's dreams less the answers to earlier questions asked again (`recheck`) that correct nothing:
    the same value again is replay's to rehearse, and another fact ("Where do I work?" answered "Work was
    exhausting today." by an episode about someone else's job) would teach the old question a wrong answer."""
    correcting = {(r.new.episode_id, r.new.question) for r in retired if r.new is not None}
    return [d for d in answered if d.source != "recheck" or (d.episode_id, d.question) in correcting]


def corrected_now(model, tokenizer, replacing: Sequence[Dream], views: dict[str, list[Messages]],
                  told_by_id: dict[str, str], config: SleepConfig) -> list[Dream]:
    """Each answer that replaces a corrected one, also as the answer to its question asked "now" ("What is
    Dara's dog called now?"), scored in its window: after a correction the user asks what holds now, and
    the words the earlier night trained ("What is Dara's dog called?") are the ones that still lead to the
    old value."""
    out, seen = [], set()
    for d in replacing:
        question = asked_now(d.question)
        if question is None or (d.episode_id, question) in seen:
            continue
        seen.add((d.episode_id, question))
        out.append(Dream(d.episode_id, question, d.answer, d.source, night=d.night, specific=d.specific,
                         window=d.window))
    score(model, tokenizer, out, views, told_by_id, config)
    return out


def told_values(tokenizer, told_by_id: dict[str, str]) -> dict[str, set[str]]:
    """Each episode's values (`text.values`) that no other episode told. A word the tokenizer keeps whole
    (one token, lower-cased, after a space) is a common word, not a name."""
    def common(word: str) -> bool:
        return len(tokenizer.encode(" " + word, add_special_tokens=False)) == 1

    return {eid: set(distinctive(sorted(values(text, common)), eid, told_by_id)) for eid, text in told_by_id.items()}


def in_context(tokenizer, d: Dream, views: dict[str, list[Messages]], config: SleepConfig) -> list[int]:
    """The teacher's prompt for a dream: its window of the episode, then its question."""
    return render(tokenizer, views[d.episode_id][d.window] + [{"role": "user", "content": d.question}],
                  config.system_prompt)


def window_groups(dreams: Sequence[Dream]) -> list[list[int]]:
    """The dreams' indices by (episode, window), in first-seen order: the batches that share a context."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, d in enumerate(dreams):
        groups.setdefault((d.episode_id, d.window), []).append(i)
    return list(groups.values())


def teacher_answers(model, tokenizer, candidates: Sequence[Dream], views: dict[str, list[Messages]],
                    config: SleepConfig, night, progress, writer, generation: Generation = LOCAL) -> list[Dream]:
    """The in-context teacher's answers to every candidate question: greedy first, then samples. The
    SEAL dream writer is an adapter of the training model only: with one, the answers come from there."""
    prompts = [in_context(tokenizer, d, views, config) for d in candidates]
    generation = LOCAL if writer else generation
    # each window's questions in a group of their own: a group reads its window once (`chat.generate`)
    groups = window_groups(candidates)
    answered: list[Dream] = []
    for k in range(config.answers_per_question):
        with adapters(model, writer) if writer else nullcontext():
            generated = generation.teacher(
                model, tokenizer, [[prompts[i] for i in group] for group in groups],
                seeds=[config.seed + k + 1000 * g for g in range(len(groups))],  # each window its own samples
                max_new_tokens=config.dream_max_new_tokens, temperature=0.0 if k == 0 else config.dream_temperature,
                batch_size=config.generation_batch_size, shared_prefix=True)
        out: list[list[int]] = [[] for _ in candidates]
        for group, group_out in zip(groups, generated):
            for i, ids in zip(group, group_out):
                out[i] = ids
        for d, ids in zip(candidates, out):
            text = decode(tokenizer, ids)
            if text:
                answered.append(Dream(d.episode_id, d.question, text, d.source, night=night, specific=d.specific,
                                      cloze=d.cloze, window=d.window))
        if progress:
            progress("dream", k + 1, config.answers_per_question, None)
    return answered


def quotes(tokenizer, candidates: Sequence[Dream], views: dict[str, list[Messages]], config: SleepConfig, night,
           avoid: dict[str, set[str]] | None = None) -> list[Dream]:
    """Each question answered with its window's told sentences about it (`episodes.quote`)."""
    out = []
    for d in candidates:
        text = quote(views[d.episode_id][d.window], d.question, tokenizer, config.dream_max_new_tokens,
                     prompt_words=PROMPT_WORDS, avoid=(avoid or {}).get(d.episode_id, ()),
                     replies_only=asks_what_you_said(d.question))
        if text:
            out.append(Dream(d.episode_id, d.question, text, "quote" if d.source != "recheck" else "recheck",
                             night=night, specific=d.specific, cloze=d.cloze, window=d.window))
    return out


def without_stale(tokenizer, model, answered: list[Dream], retired: Sequence[Retirement],
                  views: dict[str, list[Messages]], told_by_id: dict[str, str], config: SleepConfig,
                  night) -> list[Dream]:
    """Tonight's dreams less those of a correcting episode that still name a value it corrects (its own
    words "she left Gorbel" would teach the old value again); their quotes are written again without the
    clauses that name it, and scored."""
    stale: dict[str, set[str]] = {}
    for r in retired:
        if r.new is not None:
            stale.setdefault(r.new.episode_id, set()).update(r.stale)
    is_stale = [bool(stale.get(d.episode_id, set()) & words(d.answer)) for d in answered]
    dropped = {(d.episode_id, d.window, d.question, d.source, d.cloze, d.specific)
               for d, bad in zip(answered, is_stale) if bad}
    for d, bad in zip(answered, is_stale):
        if bad:
            d.teacher_logits = None
    requoted = quotes(tokenizer, [Dream(e, q, "", source, cloze=c, specific=s, window=w)
                                  for e, w, q, source, c, s in sorted(dropped)], views, config, night, avoid=stale)
    requoted = [replace(d, answer=as_it_holds_now(d.answer, d.question)) for d in requoted
                if not stale[d.episode_id] & words(d.answer)]  # as every answer is learned: as it holds now
    score(model, tokenizer, requoted, views, told_by_id, config)
    return [d for d, bad in zip(answered, is_stale) if not bad] + requoted


@torch.no_grad()
def score(model, tokenizer, dreams: list[Dream], views: dict[str, list[Messages]], told_by_id: dict[str, str],
          config: SleepConfig, batch_size: int = 16) -> None:
    """Fill agreement, teacher loss (with the dream's window in context) and student loss (without it)."""
    pad = tokenizer.pad_token_id
    for d in dreams:
        d.agreement, d.key_terms = agreement(d.answer, told_by_id[d.episode_id], d.question)
        d.key_terms = distinctive(d.key_terms, d.episode_id, told_by_id)
    # batches of one window's dreams: its tokens are read once per batch (`chat.continuation_logits`)
    groups = [[dreams[i] for i in group] for group in window_groups(dreams)]
    for chunk in (group[i:i + batch_size] for group in groups for i in range(0, len(group), batch_size)):
        conts = [answer_ids(tokenizer, d.answer) for d in chunk]
        with_ctx = [in_context(tokenizer, d, views, config) for d in chunk]
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
