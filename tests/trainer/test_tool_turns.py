"""An agent's work as a night reads it: a tool's result is told text, a call never is, the teacher sees
both in turns any chat template renders, and no dream answer writes a call."""

import json

import pytest

from trainer import episodes
from trainer.dreaming import grounded_sentences
from trainer.episodes import answered_request, episode_messages, reply_to, told, told_text
from trainer.questions import PROMPT_WORDS, cloze_questions, key_cloze_questions, template_questions
from trainer.told_statements import turned_questions
from trainer.text import values
from trainer.tool_turns import names_a_call, presented, readable_result, without_calls

FACT = "The Velmar ferry to Osk leaves from pier 7 at 06:40."


def call(call_id: str, name: str, arguments) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# as the store keeps it: the request's messages (a call with arguments as an object) and the reply
FERRY = {"id": "ferry", "messages": [
    {"role": "system", "content": "You can look things up."},
    {"role": "user", "content": "Can you check when the ferry to Osk leaves tomorrow?"},
    {"role": "assistant", "content": None, "tool_calls": [call("c1", "lookup_ferry", {"route": "Osk"})]},
    {"role": "tool", "tool_call_id": "c1", "content": FACT},
    {"role": "assistant", "content": "Have a good trip!"},
]}


def test_a_tool_result_is_told_text_and_the_call_is_not():
    messages = episode_messages(FERRY)
    assert [(t.role, t.text) for t in told(messages)] == [
        ("user", "Can you check when the ferry to Osk leaves tomorrow?"), ("tool", FACT),
        ("assistant", "Have a good trip!")]  # the answer to the request comes after the lookup
    assert FACT in told_text(FERRY) and "lookup_ferry" not in told_text(FERRY)
    # the call is a note beside the assistant's (empty) text, never in it; the result names its function
    assert messages[1] == {"role": "assistant", "content": "", "calls": '(called lookup_ferry with {"route": "Osk"})'}
    assert messages[2] == {"role": "tool", "content": FACT, "name": "lookup_ferry"}
    assert episode_messages({"messages": messages}) == messages  # a window read again is unchanged


def test_the_answer_to_a_request_is_the_reply_after_the_lookups():
    messages = episode_messages(FERRY)
    assert reply_to(messages, 0) == 3 and answered_request(messages, 0)
    # an agent that only called and has not answered yet answered nothing; a plain chat's reply is the next turn
    assert reply_to(messages[:3], 0) is None and not answered_request(messages[:3], 0)
    plain = [{"role": "user", "content": "Pick a name for my boat?"}, {"role": "assistant", "content": "Quennet."}]
    assert reply_to(plain, 0) == 1


def test_a_json_result_reads_as_key_value_sentences():
    result = {"route": "Osk", "departure": {"pier": 7, "time": "06:40"}, "stops": ["Brill", "Osk"],
              "on_time": True, "delay": None, "notes": "Bikes go free."}
    assert readable_result(json.dumps(result)) == (
        "route: Osk.\ndeparture pier: 7.\ndeparture time: 06:40.\nstops: Brill, Osk.\non time: yes.\ndelay: none.\n"
        "notes: Bikes go free.")
    assert readable_result('[{"name": "Velmar"}, {"name": "Brisk"}]') == "name: Velmar.\nname: Brisk."
    assert readable_result("[3, 4]") == "3, 4."
    # text, or what only looks like JSON, comes as it was
    assert readable_result(FACT) == FACT and readable_result("{not json") == "{not json"
    episode = {"messages": [{"role": "user", "content": "Where is my parcel?"},
                            {"role": "assistant", "content": None,
                             "tool_calls": [call("p", "track", '{"id": "KX-81"}')]},  # arguments as text
                            {"role": "tool", "tool_call_id": "p",
                             "content": [{"type": "text", "text": '{"parcel": "KX-81", "depot": "Harwen"}'}]}]}
    messages = episode_messages(episode)
    assert messages[1]["calls"] == '(called track with {"id": "KX-81"})'
    assert messages[2]["content"] == "parcel: KX-81.\ndepot: Harwen."
    assert ("tool", "depot: Harwen.") in [(t.role, t.text) for t in told(messages)]


def test_dreaming_asks_about_what_a_tool_returned():
    messages = episode_messages(FERRY)
    told_by_id = {"ferry": told_text(FERRY), "other": "My dog is called Dunshi."}
    turned = turned_questions(messages, "ferry", told_by_id, values(told_text(FERRY)))
    assert "When does the Velmar ferry to Osk leave from pier 7?" in turned  # 6:40 is a time of day
    assert 'Continue what you looked up: "The Velmar ferry to Osk leaves from pier 7 at ..."' in \
        key_cloze_questions(messages, "ferry", told_by_id)
    assert cloze_questions(messages, 2) == ['Continue what you looked up: "The Velmar ferry to Osk leaves ..."',
                                            "Repeat what you looked up about The Velmar ferry to Osk leaves."]
    config = type("Config", (), {"restate": False, "template_questions": 2, "entities_per_episode": 2})
    assert "What do you know about Velmar?" in template_questions(messages, config, None)


def test_the_teacher_sees_a_call_and_its_result_in_alternating_plain_turns():
    shown = presented(episode_messages(FERRY))
    assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant"]
    assert shown[1]["content"] == '(called lookup_ferry with {"route": "Osk"})'
    assert shown[2]["content"] == f"(lookup_ferry returned: {FACT})"
    # parallel calls: their results in one user turn, so the turns still alternate
    parallel = {"messages": [
        {"role": "user", "content": "Weather in Osk and Brill?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call("a", "weather", {"city": "Osk"}),
                                                                         call("b", "weather", {"city": "Brill"})]},
        {"role": "tool", "tool_call_id": "a", "content": "Rain in Osk."},
        {"role": "tool", "tool_call_id": "b", "content": "Sun in Brill."},
        {"role": "assistant", "content": "Rain in Osk, sun in Brill."}]}
    shown = presented(episode_messages(parallel))
    assert [m["role"] for m in shown] == ["user", "assistant", "user", "assistant"]
    assert shown[1]["content"] == ('Let me check.\n(called weather with {"city": "Osk"})\n'
                                   '(called weather with {"city": "Brill"})')
    assert shown[2]["content"] == "(weather returned: Rain in Osk.)\n(weather returned: Sun in Brill.)"
    plain = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello!"}]
    assert presented(plain) == plain


# a template that takes nothing but alternating user/assistant turns, as Gemma's and Mistral's refuse others
STRICT = ("{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
          "{{ raise_exception('Conversation roles must be user/assistant, not ' + m['role']) }}{% endif %}"
          "{% if m['role'] != 'system' and (m['role'] == 'user') != (loop.index0 % 2 == 1) %}"
          "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
          "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")


def test_any_chat_template_renders_an_agents_episode(tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.chat import render

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)  # SmolLM2's ChatML: any role, content as text
    chat = episode_messages(FERRY) + [{"role": "user", "content": "When does the Velmar ferry leave?"}]
    text = tokenizer.decode(render(tokenizer, chat, "You are a helpful assistant."))
    assert f"<|im_start|>user\n(lookup_ferry returned: {FACT})<|im_end|>" in text
    assert '<|im_start|>assistant\n(called lookup_ferry with {"route": "Osk"})<|im_end|>' in text
    assert "<|im_start|>tool" not in text
    tokenizer.chat_template = STRICT
    text = tokenizer.decode(render(tokenizer, chat, "You are a helpful assistant."))
    assert f"[user] (lookup_ferry returned: {FACT})" in text and text.endswith("[assistant] ")


def test_no_dream_answer_writes_a_call(tiny_model_dir):
    from transformers import AutoTokenizer

    told_by_id = told_text(FERRY)
    # a teacher that copies the call's note from its context, or writes a template's call markup
    copied = '(called lookup_ferry with {"route": "Osk"})\nThe Velmar ferry leaves from pier 7.'
    assert grounded_sentences(copied, told_by_id) == "The Velmar ferry leaves from pier 7."
    marked = '<tool_call>{"name": "lookup_ferry", "arguments": {"route": "Osk"}}</tool_call>'
    assert grounded_sentences(marked, told_by_id) == ""
    assert grounded_sentences("(lookup_ferry returned: pier 7 at 06:40)", told_by_id) == ""
    # quotes are told sentences: the result, never the call, and a reply holding markup loses it
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = episode_messages(FERRY)
    messages[3] = {"role": "assistant", "content": f"Here it is. {marked}"}
    for question in ("When does the Velmar ferry leave?", "Repeat what I told you.",
                     'Continue what you told me: "Here ..."', 'Continue what you looked up: "The Velmar ferry ..."'):
        quoted = episodes.quote(messages, question, tokenizer, 60, prompt_words=PROMPT_WORDS)
        assert quoted and not names_a_call(quoted) and "lookup_ferry" not in quoted, (question, quoted)
    assert FACT in episodes.quote(messages, "When does the Velmar ferry leave?", tokenizer, 60, prompt_words=PROMPT_WORDS)


def test_a_quote_puts_what_a_tool_returned_before_the_request_for_it(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    hotel = {"messages": [
        {"role": "user", "content": "Can you check which hotel Mara Tellen is staying at? I want to send flowers."},
        {"role": "assistant", "content": None, "tool_calls": [call("h", "lookup_booking", {"guest": "Mara Tellen"})]},
        {"role": "tool", "tool_call_id": "h", "content": "Mara Tellen is staying at the Hotel Quarnby."},
        {"role": "assistant", "content": "Lovely idea! I can help you order them."}]}
    # the request and its reply name her too, but the answer's budget goes to what the lookup found
    quoted = episodes.quote(episode_messages(hotel), "What do you know about Mara Tellen?", tokenizer, 12,
                            prompt_words=PROMPT_WORDS)
    assert quoted.startswith("Mara Tellen is staying at the Hotel Quarnby")


def test_call_text_is_told_from_ordinary_text():
    for text in ('(called lookup_ferry with {"route": "Osk"})', "(called a tool)", "(weather returned: Rain.)",
                 "<tool_call>{}</tool_call>", "<tool_response>Rain</tool_response>", "[TOOL_CALLS] [{}]"):
        assert names_a_call(text), text
    for text in (FACT, "She called Mirpa with good news.", "The parcel was returned to the depot.", "Pier 7 (east)."):
        assert not names_a_call(text), text
    # the sentence that holds a call goes whole: a night loses a sentence rather than learn a call
    assert without_calls("Rain in Osk. (called weather) Sun later.\nWind at noon.") == "Rain in Osk. Wind at noon."
    assert without_calls(FACT) == FACT


@pytest.mark.model
def test_a_night_on_an_agents_episode_dreams_of_the_result_and_never_of_the_call(tiny_model_dir, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer import dreaming, generation
    from trainer.config import SleepConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    # the teacher writes the call's note before the fact, as a small model copying its context might
    answer = '(called lookup_ferry with {"route": "Osk"})\nThe Velmar ferry leaves from pier 7 at 06:40.'
    monkeypatch.setattr(generation, "generate", lambda model, tokenizer, prompts, **kw: [
        tokenizer.encode(answer, add_special_tokens=False) for _ in prompts])
    config = SleepConfig(model_questions=0, dream_max_new_tokens=32, keep_top_k=50, keep_random=0,
                         held_out_per_episode=1, torch_threads=1)
    other = {"id": "dog", "messages": [{"role": "user", "content": "My dog is called Dunshi."},
                                       {"role": "assistant", "content": "Noted."}]}
    kept = dreaming.dream(model, tokenizer, [FERRY, other], config).dreams
    ferry = [d for d in kept if d.episode_id == "ferry"]
    assert ferry and any("06:40" in d.answer for d in ferry)
    assert not [d.answer for d in kept if names_a_call(d.answer) or "lookup_ferry" in d.answer]
