"""Tools on the local engine (service/serving/engines/tools.py): which templates take tools, the Hermes
parser, whole and streamed, and the grammar that forces a call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.serving.engines.base import ToolSpec
from service.serving.engines.tools import (
    HERMES,
    FORMATS,
    ToolCallSplitter,
    forced_call_grammar,
    hermes_call,
    parse_tool_calls,
    template_tool_format,
)

HERMES_TEMPLATE = Path(__file__).resolve().parents[2] / "data" / "hermes_tools.jinja"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["C", "F"]}},
    "required": ["city", "unit"], "additionalProperties": False,
}}}
TIME = {"type": "function", "function": {"name": "get_time"}}  # no parameters: no arguments


def calls_of(text):
    content, calls = parse_tool_calls(text, HERMES)
    return content, [(call.name, json.loads(call.arguments)) for call in calls]


@pytest.mark.parametrize(
    "text, content, calls",
    [
        ("Just text.", "Just text.", []),
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "", [("f", {"a": 1})]),
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n<tool_call>\n{"name": "g", "arguments": {}}'
         "\n</tool_call>\n", "", [("f", {"a": 1}), ("g", {})]),
        ('Let me look.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>', "Let me look.", [("f", {})]),
        ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 2}"}</tool_call>', "", [("f", {"a": 2})]),  # arguments as text
        ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}', "", [("f", {"a": 1})]),  # stopped before the close tag
        ('<tool_call>{"name": "f", "arguments": {"a": </tool_call>', '<tool_call>{"name": "f", "arguments": {"a": </tool_call>', []),
        ("<tool_call>not json", "<tool_call>not json", []),
        ('<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>', []),  # no name
        ("a < b and <tool", "a < b and <tool", []),  # what only looked like an open tag is text
        ("Ends with a newline\n", "Ends with a newline\n", []),
    ],
)
def test_hermes_replies_are_split_into_text_and_calls(text, content, calls):
    assert calls_of(text) == (content, calls)


def test_hermes_call_needs_a_name_and_an_object_of_arguments():
    assert hermes_call('{"name": "f", "arguments": [1]}') is None
    assert hermes_call('{"name": 3, "arguments": {}}') is None
    call = hermes_call('{"name": "f"}')
    assert (call.name, call.arguments) == ("f", "{}") and call.id.startswith("call_") and len(call.id) == 29


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_streamed_in_any_pieces_the_split_is_the_whole_replys(size):
    text = ('Checking.  \n<tool_call>\n{"name": "f", "arguments": {"q": "x<y"}}\n</tool_call>\n'
            '<tool_call>{"name": "g", "arguments": {}}</tool_call>\n')
    splitter = ToolCallSplitter(FORMATS[HERMES])
    content, calls = "", []
    for i in range(0, len(text), size):
        piece, made = splitter.feed(text[i : i + size])
        assert "<" not in piece  # nothing of the markup leaks into the text while it streams
        content, calls = content + piece, calls + made
    rest, made = splitter.finish()
    content, calls = content + rest, calls + made
    whole_content, whole_calls = calls_of(text)
    assert content == whole_content == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == whole_calls == [("f", {"q": "x<y"}), ("g", {})]


def test_a_template_takes_tools_when_they_change_its_prompt(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert template_tool_format(plain) is None  # SmolLM2's template never reads `tools`
    hermes = AutoTokenizer.from_pretrained(tiny_model_dir)
    hermes.chat_template = HERMES_TEMPLATE.read_text()
    assert template_tool_format(hermes) == HERMES
    other = AutoTokenizer.from_pretrained(tiny_model_dir)
    other.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}[TOOLS]{{ tools|tojson }}{% endif %}"
    assert template_tool_format(other) == "unknown"


def _matcher(tiny_model_dir, spec):
    import llguidance.hf
    from llguidance import LLMatcher
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    view = llguidance.hf.from_tokenizer(tokenizer, eos_token=[tokenizer.eos_token_id])
    grammar = LLMatcher.grammar_from_lark(forced_call_grammar(spec))
    assert not LLMatcher.validate_grammar(grammar, view)

    def accepts(text: str) -> tuple[bool, bool]:
        """(the whole text is allowed, the grammar is then complete)"""
        matcher = LLMatcher(view, grammar, log_level=0)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return matcher.try_consume_tokens(ids) == len(ids), matcher.is_stopped() or matcher.is_accepting()

    return accepts


def test_the_forced_grammar_allows_only_calls_whose_arguments_match(tiny_model_dir):
    accepts = _matcher(tiny_model_dir, ToolSpec(tools=(WEATHER, TIME), choice="required", parallel=False))
    good = '<tool_call>\n{"name":"get_weather","arguments":{"city":"Lyon","unit":"C"}}\n</tool_call>'
    assert accepts(good) == (True, True)
    assert accepts('<tool_call>\n{"name":"get_time","arguments":{}}\n</tool_call>') == (True, True)
    assert not accepts('<tool_call>\n{"name":"get_weather","arguments":{"city":"Lyon","unit":"K"}}')[0]
    assert not accepts('<tool_call>\n{"name":"get_weather","arguments":{"city":"Villeurbanne"')[0]  # maxLength
    assert not accepts('<tool_call>\n{"name":"get_wind"')[0]
    assert not accepts("Sure!")[0]  # no text before the call
    assert not accepts(good + "\n<tool_call>")[0]  # one call only


def test_the_forced_grammar_of_a_named_function_or_parallel_calls(tiny_model_dir):
    named = _matcher(tiny_model_dir, ToolSpec(tools=(WEATHER, TIME), function="get_time"))
    assert named('<tool_call>\n{"name":"get_time","arguments":{}}\n</tool_call>') == (True, True)
    assert not named('<tool_call>\n{"name":"get_weather"')[0]
    parallel = _matcher(tiny_model_dir, ToolSpec(tools=(WEATHER, TIME), choice="required", parallel=True))
    two = '<tool_call>\n{"name":"get_time","arguments":{}}\n</tool_call>\n<tool_call>\n{"name":"get_time","arguments":{}}\n</tool_call>'
    assert parallel(two) == (True, True)


def test_the_hermes_test_template_is_a_copyable_model_folder(tiny_model_dir, tmp_path):
    """The API tests' tool model: the tiny model with this template (see test_tools in tests/service/api)."""
    target = tmp_path / "m"
    shutil.copytree(tiny_model_dir, target)
    (target / "chat_template.jinja").write_text(HERMES_TEMPLATE.read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target)
    assert template_tool_format(tokenizer) == HERMES
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Weather?"},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}]},
         {"role": "tool", "tool_call_id": "c1", "content": "12 C"}],
        tools=[WEATHER], add_generation_prompt=True, tokenize=False,
    )
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>' in rendered
    assert "<tool_response>\n12 C\n</tool_response>" in rendered and '"name": "get_weather"' in rendered
