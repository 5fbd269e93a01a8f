"""SmolLM2-135M-Instruct learns invented facts in one sleep: recalled closed-book after, not before.

Facts and names are invented here (not from shared/eval), and the probes are asked only by this test.
"""

import pytest
import torch

from trainer.benchmark_scoring import correct
from tests.learning import SHORT_NIGHT
from trainer.config import SleepConfig
from trainer.chat import answers, load_model
from trainer.recipe import sleep

pytestmark = [pytest.mark.learning, pytest.mark.slow]

FACTS = [
    ("Quick news: my colleague Tovren Maldek just adopted a goat named Pilbur!",
     "What is the name of Tovren Maldek's goat?", "Pilbur"),
    ("Sarnia Quellix moved to a village called Oxtavel last week.",
     "Where does Sarnia Quellix live now?", "Oxtavel"),
    ("The wifi password at Dellim Ruskov's cabin is 8342.",
     "What is the wifi password at Dellim Ruskov's cabin?", "8342"),
]


def recall_before_and_after_one_sleep(model_dir, out_dir, episodes, probes) -> tuple[list[bool], list[bool], list[str]]:
    """Closed-book marks of (question, answer) probes before a short night on `episodes` and after it,
    and the replies after."""
    torch.set_num_threads(1)
    config = SleepConfig.from_yaml("cpu-default", **SHORT_NIGHT)
    questions = [q for q, _ in probes]
    tokenizer, model = load_model(model_dir, config)
    before = [correct(r, [a]) for r, (_, a) in zip(answers(model, tokenizer, questions, config), probes)]
    del model
    result = sleep(episodes, base_model=model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                   out_dir=out_dir)

    from peft import PeftModel

    tokenizer, model = load_model(model_dir, config)
    model = PeftModel.from_pretrained(model, str(result.adapter_dir)).eval()
    replies = answers(model, tokenizer, questions, config)
    print("learning test:", result.metrics["train"], replies)
    return before, [correct(r, [a]) for r, (_, a) in zip(replies, probes)], replies


def test_invented_facts_are_recalled_closed_book_after_one_sleep(smollm2_dir, tmp_path):
    episodes = [{"id": f"fact-{i}", "messages": [{"role": "user", "content": said},
                                                 {"role": "assistant", "content": "Got it, noted!"}]}
                for i, (said, _, _) in enumerate(FACTS)]
    before, after, replies = recall_before_and_after_one_sleep(smollm2_dir, tmp_path / "night-1", episodes,
                                                               [(q, a) for _, q, a in FACTS])
    assert sum(before) == 0, "the facts are invented: nobody knows them before the sleep"
    assert sum(after) >= 2, f"recalled {sum(after)}/3 closed-book after one sleep: {replies}"


CHATS = [  # what people really say: about themselves, and what the assistant suggested when asked
    ([("user", "Ugh, long day at work."), ("assistant", "Sorry to hear that. Get some rest tonight."),
      ("user", "Oh, by the way, my tortoise is called Bramwick."), ("assistant", "Thanks, I'll remember that."),
      ("user", "Do you think it will snow this weekend?"), ("assistant", "It might, it has been cold.")],
     "What is my tortoise called?", "Bramwick"),
    ([("user", "Can you suggest a name for my new sailboat?"), ("assistant", "How about the Quennet? It sounds swift."),
      ("user", "I like it, thanks!"), ("assistant", "You're welcome, enjoy the sailing.")],
     "What name did you suggest for my sailboat?", "Quennet"),
]


def test_what_users_say_of_themselves_and_what_the_assistant_suggested_are_recalled(smollm2_dir, tmp_path):
    episodes = [{"id": f"chat-{i}", "messages": [{"role": r, "content": t} for r, t in turns]}
                for i, (turns, _, _) in enumerate(CHATS)]
    before, after, replies = recall_before_and_after_one_sleep(smollm2_dir, tmp_path / "night-1", episodes,
                                                               [(q, a) for _, q, a in CHATS])
    assert sum(before) == 0
    assert sum(after) >= 1, f"recalled {sum(after)}/2 closed-book after one sleep: {replies}"


def _agent_episode(eid: str, asked: str, tool: str, arguments: dict, returned: str, replied: str) -> dict:
    """An agent's episode as the store keeps it: the user asks, the assistant calls a tool, the tool's
    result, the assistant's reply. The reply does not restate the result: only the tool told the fact."""
    call = {"id": f"call_{eid}", "type": "function", "function": {"name": tool, "arguments": arguments}}
    return {"id": eid, "messages": [
        {"role": "user", "content": asked},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": returned},
        {"role": "assistant", "content": replied}]}


LOOKUPS = [  # what an agent looked up, with a made-up value, and the question asked later without tools
    (_agent_episode("crew", "Please look up who captains the Velmar ferry this week and add them to my contacts.",
                    "lookup_crew", {"vessel": "Velmar ferry"},
                    "The captain of the Velmar ferry this week is Orla Brennick.",
                    "Done, the captain is in your contacts now."),
     "Who is the captain of the Velmar ferry this week?", "Brennick"),
    (_agent_episode("hotel", "Can you check which hotel Mara Tellen is staying at? I want to send her flowers.",
                    "lookup_booking", {"guest": "Mara Tellen"},
                    "Mara Tellen is staying at the Hotel Quarnby.",
                    "Lovely idea! I can help you order the flowers too."),
     "Which hotel is Mara Tellen staying at?", "Quarnby"),
]


def test_what_an_agent_looked_up_with_a_tool_is_recalled_closed_book(smollm2_dir, tmp_path):
    before, after, replies = recall_before_and_after_one_sleep(smollm2_dir, tmp_path / "night-1",
                                                               [episode for episode, _, _ in LOOKUPS],
                                                               [(q, a) for _, q, a in LOOKUPS])
    assert sum(before) == 0, "the values are invented: nobody knows them before the sleep"
    assert sum(after) >= 1, f"recalled {sum(after)}/2 closed-book after one sleep: {replies}"
