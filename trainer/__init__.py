"""The sleep recipe: dreaming and knowledge seeding into a growing LoRA (design.md section 4).

A pure library over tensors, token ids and files: no web, no database. The worker calls
`trainer.sleep(...)`; the benchmark (`reverie eval`) lives in `trainer.benchmark`.
"""

from trainer.config import SleepConfig

__all__ = ["SleepConfig"]
