"""llama.cpp's quantizer, for `create --quantize` (the store reaches native code only through here)."""

from __future__ import annotations

from a3s_power import _native

quantize = _native.quantize
