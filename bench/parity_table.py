"""The parity table: layout x mode x scheduler x guidance -> max abs difference between stepviz's latents and
those of the mode's own diffusers pipeline (same seed, CPU generator), for the configs in tests/parity_cases.py.
tests/test_engine_configs_parity.py asserts every entry is 0.0; this prints them as a Markdown table.

    python bench/parity_table.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import common  # noqa: F401  (puts tests/ on the path)
import torch

sys.path.append(str(Path(__file__).resolve().parent.parent))  # training/: the tiny models' tokenizer


def main() -> None:
    from parity_cases import ALL_CASES, max_abs_diff

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)  # the reference pipelines' constructors warn on old configs
    print("| layout | mode | scheduler | guidance | steps | max abs diff |")
    print("|---|---|---|---|---|---|")
    for case in ALL_CASES:
        try:
            ours, theirs, st = case.run()
            diff = f"{max_abs_diff(ours, theirs):.3g}"
            scheduler = f"{case.scheduler or 'own'} ({type(st.scheduler).__name__})"
        except Exception as exc:  # an old stepviz without a feature a case needs: say so in the table
            diff, scheduler = f"error: {str(exc).splitlines()[0][:60]}", case.scheduler or "own"
        scale = "default" if case.guidance is None else f"{case.guidance:g}"
        print(f"| {case.layout} | {case.mode} | {scheduler} | {scale} | {case.steps} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
