"""Structured output on the local engine: a `response_format` becomes a grammar, and the grammar masks
each step's logits so that only tokens which keep the reply inside it can be sampled.

The grammar library is llguidance: it is maintained (guidance-ai) and is one of vLLM's own
structured-output backends, so a schema means the same on both engines; its wheel has no dependencies
(it pulls no second torch into the CPU install); a mask over SmolLM2's 49k tokens takes well under a
millisecond; and it exposes one matcher per sequence (mask, consume the sampled token, ask whether the
grammar is complete), which is exactly the shape of our own decoding loop, `n` choices included.

JSON is compiled without free whitespace (`whitespace_flexible: False`): a weak model offered a
whitespace token at every step may fill the reply with it and never close the object.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from service.errors import EngineError, InvalidRequestError

_COMPILE_OPTIONS = {"whitespace_flexible": False}
_CACHED_GRAMMARS = 64
# The value of bit i of an int32 word, bit 31 included (as a negative int32).
_BIT_VALUES = torch.tensor([(1 << i) - (1 << 32 if i == 31 else 0) for i in range(32)], dtype=torch.int32)


def schema_of(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema a `response_format` (OpenAI's shape, not `text`) asks the reply to match:
    any JSON object for `json_object`, the given schema for `json_schema` (none given: any JSON value)."""
    if response_format["type"] == "json_object":
        return {"type": "object"}
    schema = response_format["json_schema"].get("schema")
    return {} if schema is None else dict(schema)


def unpack_bitmask(words: torch.Tensor, size: int) -> torch.Tensor:
    """llguidance's mask, one bit per token id packed in int32 `words` (bit i of word w is token 32w + i),
    as a bool tensor of shape `(size,)`; ids beyond the mask (a model whose output layer is larger than
    its tokenizer) are not allowed."""
    allowed = ((words.unsqueeze(1) & _BIT_VALUES) != 0).flatten()
    if allowed.numel() >= size:
        return allowed[:size]
    return torch.cat([allowed, torch.zeros(size - allowed.numel(), dtype=torch.bool)])


class TokenConstraint:
    """One choice's position in its grammar: which tokens may come next, and the state after each."""

    def __init__(self, matcher: Any, words: int):
        self._matcher = matcher
        self._words = torch.zeros(words, dtype=torch.int32)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` of shape `(vocab,)` with every token the grammar forbids next set to -inf (a copy:
        the model's own logits stay as they are, for log-probabilities)."""
        self._matcher.unsafe_compute_mask_ptr(self._words.data_ptr(), self._words.numel() * 4)
        self._raise_on_error()
        allowed = unpack_bitmask(self._words, logits.shape[-1]).to(logits.device)
        return logits.float().masked_fill(~allowed, float("-inf"))

    def advance(self, token: int) -> None:
        """Move past the sampled `token` (one the mask allowed)."""
        self._matcher.consume_token(token)
        self._raise_on_error()

    @property
    def complete(self) -> bool:
        """Whether the grammar is satisfied and allows nothing more: the reply ends here."""
        return self._matcher.is_stopped()

    def _raise_on_error(self) -> None:
        if self._matcher.is_error():
            raise EngineError(f"structured output failed: {self._matcher.get_error()}")


class GrammarCompiler:
    """Compiles response formats into llguidance grammars for one tokenizer and makes their matchers.

    Thread-safe: formats are checked on a helper thread, matchers made on the engine's worker. The
    tokenizer's llguidance view costs about a second to build, so it is built at the first structured
    request, not at every engine start; the last compiled grammars are cached.
    """

    def __init__(self, tokenizer: Any, eos_ids: Iterable[int]):
        self._tokenizer = tokenizer
        self._eos_ids = sorted(eos_ids)
        self._lock = threading.Lock()
        self._ll_tokenizer: Any = None
        self._grammars: OrderedDict[str, str] = OrderedDict()

    def compile(self, response_format: Mapping[str, Any]) -> str:
        """The grammar of `response_format`; `InvalidRequestError` naming `response_format` when
        llguidance cannot compile its schema (unknown keywords, formats or types, contradictions)."""
        from llguidance import LLMatcher

        def build() -> str:
            return LLMatcher.grammar_from_json_schema(schema_of(response_format), overrides=_COMPILE_OPTIONS)

        key = json.dumps(response_format, sort_keys=True)
        return self._compiled(key, build, "response_format", "response_format's schema")

    def compile_lark(self, lark: str, *, param: str, what: str) -> str:
        """The grammar of a Lark text (llguidance's dialect, JSON schemas inline); `InvalidRequestError`
        naming `param` when it cannot be compiled (`what` says what the request asked for)."""
        from llguidance import LLMatcher

        return self._compiled(lark, lambda: LLMatcher.grammar_from_lark(lark), param, what)

    def _compiled(self, key: str, build, param: str, what: str) -> str:
        from llguidance import LLMatcher

        with self._lock:
            if key in self._grammars:
                self._grammars.move_to_end(key)
                return self._grammars[key]
        try:
            grammar = build()
            error = LLMatcher.validate_grammar(grammar, self._tokenizer_view())
        except ValueError as exc:
            error = str(exc)
        if error:
            raise InvalidRequestError(f"{what} cannot be enforced: {error}", param=param)
        with self._lock:
            self._grammars[key] = grammar
            while len(self._grammars) > _CACHED_GRAMMARS:
                self._grammars.popitem(last=False)
        return grammar

    def constraints(self, grammar: str, n: int) -> list[TokenConstraint]:
        """`n` independent constraints at the start of `grammar`, one per choice."""
        from llguidance import LLMatcher

        tokenizer = self._tokenizer_view()
        first = LLMatcher(tokenizer, grammar, log_level=0)
        matchers = [first, *(first.deep_copy() for _ in range(n - 1))]
        words = (tokenizer.vocab_size + 31) // 32
        constraints = [TokenConstraint(matcher, words) for matcher in matchers]
        constraints[0]._raise_on_error()
        return constraints

    def _tokenizer_view(self) -> Any:
        with self._lock:
            if self._ll_tokenizer is None:
                import llguidance.hf

                self._ll_tokenizer = llguidance.hf.from_tokenizer(self._tokenizer, eos_token=self._eos_ids)
            return self._ll_tokenizer
