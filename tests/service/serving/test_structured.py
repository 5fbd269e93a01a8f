"""The grammar side of structured output, without a model: llguidance's packed mask, the schema a
response_format asks for, compile errors, and one constraint walked by hand with SmolLM2's tokenizer."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from service.errors import InvalidRequestError
from service.serving.engines.structured import GrammarCompiler, schema_of, unpack_bitmask

pytestmark = [pytest.mark.model]


def test_unpack_bitmask_reads_bit_i_of_word_w_as_token_32w_plus_i():
    words = torch.tensor([0b101, -(2**31)], dtype=torch.int32)  # tokens 0 and 2; token 63 (bit 31)
    allowed = unpack_bitmask(words, 64)
    assert allowed.nonzero().flatten().tolist() == [0, 2, 63]
    assert unpack_bitmask(words, 3).tolist() == [True, False, True]
    padded = unpack_bitmask(words, 70)  # an output layer larger than the tokenizer: the rest is forbidden
    assert padded.shape == (70,) and not padded[64:].any()


def test_schema_of_each_format():
    assert schema_of({"type": "json_object"}) == {"type": "object"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}) == schema
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x"}}) == {}


@pytest.fixture(scope="module")
def compiler(tiny_model_dir) -> tuple[GrammarCompiler, object]:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return GrammarCompiler(tokenizer, [tokenizer.eos_token_id]), tokenizer


@pytest.mark.parametrize(
    "schema, says",
    [({"type": "objekt"}, "objekt"), ({"type": "string", "format": "no-such-format"}, "no-such-format")],
)
def test_a_schema_llguidance_cannot_compile_is_a_400_naming_response_format(compiler, schema, says):
    with pytest.raises(InvalidRequestError, match=says) as caught:
        compiler[0].compile({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert caught.value.param == "response_format" and caught.value.status_code == 400


def test_a_constraint_allows_only_what_the_grammar_allows_and_ends_with_it(compiler):
    grammars, tokenizer = compiler
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    grammar = grammars.compile({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert grammars.compile({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}) is grammar
    first, second = grammars.constraints(grammar, 2)
    logits = torch.zeros(len(tokenizer))
    text = ""
    while not first.complete:
        masked = first.mask(logits)
        allowed = torch.isfinite(masked).nonzero().flatten().tolist()
        assert allowed and logits.eq(0).all()  # the model's logits stay as they were
        token = max(allowed, key=lambda i: len(tokenizer.decode([i])))  # the longest allowed piece
        first.advance(token)
        text += tokenizer.decode([token])
    assert text in ('{"ok":true}', '{"ok":false}')  # no whitespace anywhere: whitespace_flexible is off
    # the other choice has its own matcher, still at the start: only an opening brace may come
    opening = torch.isfinite(second.mask(logits)).nonzero().flatten().tolist()
    assert opening and all(tokenizer.decode([i]).startswith("{") for i in opening)
