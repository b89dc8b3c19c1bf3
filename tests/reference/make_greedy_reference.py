#!/usr/bin/env python3
"""llama.cpp's own `llama-simple` output for each (model, prompt), produced on this machine.

The test suite (tests/integration/test_native_generation.py) runs this in its session; nothing is
committed, since the numbers depend on the CPU. To look at it by hand:
    python tests/reference/make_greedy_reference.py --out /tmp/greedy.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_tools import build_llama_simple, run_llama_simple  # noqa: E402

from a3s_power.bundled import bundled_model_path  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
]
MODELS = ["smollm2:135m", "gemma3:270m"]
N_PREDICT = 32


def reference() -> list[dict[str, object]]:
    exe = build_llama_simple()
    rows = []
    for name in MODELS:
        path = bundled_model_path(name)
        for prompt in PROMPTS:
            rows.append(
                {
                    "model": name,
                    "prompt": prompt,
                    "n_predict": N_PREDICT,
                    "stdout": run_llama_simple(path, prompt, N_PREDICT, exe),
                }
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(json.dumps(reference(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
