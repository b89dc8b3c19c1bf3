// GGUF quantization (Ollama's `create --quantize`) through llama.cpp's quantize API.
#pragma once

#include <string>
#include <vector>

namespace a3s {

// Names accepted for `ftype` (case-insensitive): q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K_S q3_K_M q3_K_L
// q4_K_S q4_K_M (q4_K) q5_K_S q5_K_M (q5_K) q6_K f16 bf16 f32.
std::vector<std::string> quantize_types();

// Writes `dst` from `src`. Throws std::invalid_argument for an unknown type or a source that is
// not F16/BF16/F32 (Ollama's rule), ModelError for a bad file, std::runtime_error on failure.
void quantize(const std::string & src, const std::string & dst, const std::string & ftype, int n_threads);

}  // namespace a3s
