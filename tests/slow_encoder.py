"""A deliberately slow encoder for fault-injection tests (found by dotted path)."""

import time

from encoders.hashing import HashingEncoder


class SlowEncoder(HashingEncoder):
    name = "slow-hashing"

    def __init__(self, *, delay: float = 0.3, **options):
        self.delay = delay
        super().__init__(**options)

    def _encode_batch(self, texts):
        time.sleep(self.delay)
        return super()._encode_batch(texts)
