"""General prompts replayed with the base model as teacher (training) and checked by the gate.

Everyday questions and instructions unrelated to any episode: the guard against losing general
skill. The two lists are disjoint so the gate measures what training did not see.
"""

TRAIN = (
    "What is the capital of Italy?",
    "How many minutes are in an hour?",
    "Name three colors.",
    "What do cows drink?",
    "Write one sentence about the sea.",
    "What is 3 plus 5?",
    "Which season comes after winter?",
    "What is the largest ocean on Earth?",
    "Give me a synonym for happy.",
    "How many wheels does a bicycle have?",
    "What do plants need to grow?",
    "Translate 'thank you' into French.",
    "What is the boiling point of water in Celsius?",
    "Name a fruit that is yellow.",
    "What is the opposite of up?",
    "How many months are in a year?",
    "What animal is known as the king of the jungle?",
    "What is the main language spoken in Spain?",
    "Tell me a fun fact about the moon.",
    "What shape has three sides?",
)
GATE = (
    "What is the capital of Germany?",
    "How many days are in a year?",
    "What color is grass?",
    "What is 10 minus 4?",
    "Which animal barks?",
    "What is the opposite of big?",
    "How many legs does a cat have?",
    "What do we call a baby dog?",
    "Which planet is closest to the sun?",
    "What is the freezing point of water in Celsius?",
    "What do you use to write on paper?",
    "What is the capital of England?",
)
