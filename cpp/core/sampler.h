// Request-level sampling options (Ollama's names) and the sampler they build.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct common_sampler;
struct llama_model;

namespace a3s {

class Model;

struct SamplingParams {
    // Ollama defaults
    float    temperature       = 0.8f;
    int32_t  top_k             = 40;
    float    top_p             = 0.9f;
    float    min_p             = 0.0f;
    float    typical_p         = 1.0f;
    float    repeat_penalty    = 1.0f;
    int32_t  repeat_last_n     = 64;
    float    presence_penalty  = 0.0f;
    float    frequency_penalty = 0.0f;
    bool     penalize_newline  = true;
    int32_t  mirostat          = 0;
    float    mirostat_tau      = 5.0f;
    float    mirostat_eta      = 0.1f;
    int64_t  seed              = -1;   // -1: random
    bool     ignore_eos        = false;
    std::vector<std::pair<int32_t, float>> logit_bias;
    // constrained decoding
    std::string grammar;                       // GBNF
    bool        grammar_lazy = false;
    std::vector<std::string> trigger_words;
    std::vector<std::string> trigger_patterns;
    std::vector<std::string> preserved_tokens;
    std::string generation_prompt;
    // The grammar came from the chat template (tool calls / output format): it starts at the
    // generation prompt, which is fed to it first (llama.cpp's prefill). User grammars start at
    // the reply.
    bool        grammar_from_template = false;
};

// Refuses what llama.cpp would abort on or fail to build (std::invalid_argument with the reason):
// unknown mirostat / repeat_last_n values, logit-bias tokens outside the vocabulary, a grammar
// that does not parse. Engine::submit calls it before a request is queued.
void check_sampling(const Model & model, const SamplingParams & p);

// Builds a common_sampler from parameters that passed check_sampling.
common_sampler * make_sampler(const Model & model, const SamplingParams & p);

// Validates a GBNF grammar without sampling (throws std::invalid_argument with the reason).
void check_grammar(const Model & model, const std::string & gbnf);

// JSON schema (as a JSON string) → GBNF. Throws std::invalid_argument.
std::string json_schema_to_gbnf(const std::string & schema_json);

}  // namespace a3s
