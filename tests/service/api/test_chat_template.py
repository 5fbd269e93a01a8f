"""REVERIE_CHAT_TEMPLATE and the shipped SmolLM2 template with tools (service/chat_templates/).

The embedded default (the bundled SmolLM2-135M-Instruct, no settings) serves tools through the shipped
Hermes-style template, and renders every conversation without tools exactly as SmolLM2's own template
does, so nothing else changes. Over a real server with the official `openai` client and the real
SmolLM2: a weak tool caller, so only well-formedness is checked where the call is forced.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from transformers import AutoTokenizer

from service.app import create_app
from service.config import BUNDLED_CHAT_TEMPLATE, Settings
from service.modelprep import BUNDLED_FOLDER
from service.store.db import upgrade
from tests.servers import server_in_thread

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The forecast for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"], "additionalProperties": False},
}}]
ORDINARY = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Again, with ü and 東京"}],
    [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ada"}],
    [{"role": "user", "content": "a"}, {"role": "system", "content": "a late system turn"},
     {"role": "user", "content": ""}],
]


@pytest.mark.parametrize("messages", ORDINARY)
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_without_tools_the_shipped_template_gives_smollm2s_own_prompt(smollm2_dir, messages, generation_prompt):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    own = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    shipped = tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation_prompt, tokenize=False, chat_template=BUNDLED_CHAT_TEMPLATE.read_text()
    )
    assert shipped == own
    assert tokenizer(shipped, add_special_tokens=False)["input_ids"] == tokenizer(own, add_special_tokens=False)["input_ids"]


def test_with_tools_the_shipped_template_lists_them_and_writes_calls_and_results_in_hermes_markup(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    messages = [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Lyon?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny."},
    ]
    text = tokenizer.apply_chat_template(
        messages, tools=TOOLS, add_generation_prompt=True, tokenize=False, chat_template=BUNDLED_CHAT_TEMPLATE.read_text()
    )
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n") and json.dumps(TOOLS[0]) in text
    assert text.count("<|im_start|>system") == 1  # the system message is the tools turn, not a second one
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call><|im_end|>' in text
    assert text.endswith("<|im_start|>user\n<tool_response>\nSunny.\n</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_the_setting_resolves_to_the_shipped_template_only_for_the_bundled_model(tmp_path):
    assert Settings(data_dir=tmp_path).resolved_chat_template == BUNDLED_CHAT_TEMPLATE
    assert Settings(data_dir=tmp_path, chat_template="model").resolved_chat_template is None
    assert Settings(data_dir=tmp_path, model=str(tmp_path)).resolved_chat_template is None
    mine = tmp_path / "mine.jinja"
    assert Settings(data_dir=tmp_path, model=str(tmp_path), chat_template=str(mine)).resolved_chat_template == mine


@pytest.fixture(scope="module")
def default_daemon(smollm2_dir, tmp_path_factory):
    """The embedded default: the bundled model (its export already in the data dir), no template set."""
    data = tmp_path_factory.mktemp("default-daemon")
    (data / "models").mkdir()
    (data / "models" / BUNDLED_FOLDER).symlink_to(smollm2_dir)
    settings = Settings(data_dir=data, scheduler=False, embedded_worker=False, torch_threads=1)
    upgrade(settings.resolved_database_url)
    with server_in_thread(create_app(settings)) as base_url:
        yield openai.OpenAI(base_url=f"{base_url}/v1", api_key="anything", max_retries=0)


@pytest.mark.model
def test_the_default_daemon_takes_tools_and_forced_calls_are_well_formed(default_daemon, smollm2_dir):
    messages = [{"role": "user", "content": "What is the weather in Lyon?"}]
    reply = default_daemon.chat.completions.create(
        model="reverie", messages=messages, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        max_tokens=60, seed=0,
    )
    (call,) = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}

    named = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(default_daemon.chat.completions.create(
        model="reverie", messages=messages, tools=TOOLS, tool_choice=named, parallel_tool_calls=False,
        max_tokens=60, seed=1, stream=True,
    ))
    pieces = [p for c in chunks if c.choices for p in c.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "get_weather"
    assert set(json.loads("".join(p.function.arguments or "" for p in pieces))) == {"city"}

    # plain chat: the prompt SmolLM2's own template makes, token for token
    plain = default_daemon.chat.completions.create(model="reverie", messages=messages, max_tokens=2)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    own = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert plain.usage.prompt_tokens == len(tokenizer(own, add_special_tokens=False)["input_ids"])
    assert plain.choices[0].message.tool_calls is None
