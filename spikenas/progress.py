"""Progress reporting that copes without a terminal.

On a TTY a tqdm bar; otherwise (CI, redirected output) a plain line every ``every`` percent, so
logs stay readable and nothing waits for a terminal.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, desc) as p: p.update(1)``; ``enabled=False`` prints nothing."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, every: float = 10.0) -> None:
        self.total, self.desc, self.enabled, self.every = max(int(total), 0), desc, enabled, every
        self.count = 0
        self._next_pct = every
        self._start = time.perf_counter()
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: object) -> None:
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            return
        pct = 100.0 * self.count / self.total if self.total else 100.0
        if pct + 1e-9 >= self._next_pct or self.count == self.total:
            extra = " ".join(f"{k}={v}" for k, v in postfix.items())
            elapsed = time.perf_counter() - self._start
            print(f"{self.desc}: {self.count}/{self.total} ({pct:.0f}%) {elapsed:.1f}s {extra}".rstrip(),
                  file=sys.stderr, flush=True)
            while self._next_pct <= pct:
                self._next_pct += self.every

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
