"""bench/question_shapes.py prints the questions a night would ask of hand-written chats, and for a fact and
its correction the questions the correction's night asks again and those it would retire."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, text, *flags, model):
    lines = tmp_path / "chats.txt"
    lines.write_text(text)
    done = subprocess.run([sys.executable, "bench/question_shapes.py", str(lines), "--model", model, *flags],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_a_chat_prints_its_questions_and_a_pair_the_ones_asked_again(tmp_path, tiny_model_dir):
    out = _run(tmp_path, "# a comment\nMy dog is called Dunshi. || What a lovely name!\n", model=str(tiny_model_dir))
    assert "== My dog is called Dunshi." in out and "    What is my dog called?" in out and "comment" not in out
    pairs = _run(tmp_path, "I work at Gorbel. || I left Gorbel last month, I'm at Lobel now.\n"
                           "I'm learning the cello. || I gave up the cello and started the harp.\n", "--pairs",
                 model=str(tiny_model_dir))
    first, second = pairs.split("\n")[0:3], pairs.split("\n")[3:6]
    assert first[0].startswith("OK ") and "Where do I work?" in first[1]
    # were the answer the told sentence, the correction retires where I work; the harp (no value) nothing
    assert first[2].startswith("     retires:") and "Where do I work?" in first[2]
    assert second[0].startswith("NONE") and second[2] == "     retires: nothing"
