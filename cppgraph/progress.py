"""Progress of a fit in Python (``CPPGraph(verbose=True)``): a tqdm bar of the epochs,
in a notebook or on stderr."""

from __future__ import annotations

import sys


class epoch_bar:  # noqa: N801 - used like a function
    """A progress bar over at most ``total`` epochs; ``update`` takes a training-log
    entry, ``close`` ends the bar with a summary line."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc="fit", unit="epoch", file=sys.stderr, leave=False)

    def update(self, entry: dict) -> None:
        if entry.get("phase") and entry["epoch"] == 1:  # the next phase starts from 0
            self.bar.reset()
            self.bar.set_description_str(entry["phase"], refresh=False)
        self.bar.set_postfix_str(f"val MSE {entry['val_loss']:.5f}", refresh=False)
        self.bar.update(1)

    def close(self, summary: str) -> None:
        self.bar.close()
        print(summary, file=sys.stderr)
