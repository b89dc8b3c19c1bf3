#include "sampler.h"

#include <cmath>
#include <regex>
#include <stdexcept>

#include "common.h"
#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama.h"
#include "log.h"
#include "log_capture.h"
#include "model.h"
#include "sampling.h"

namespace a3s {

static std::string regex_escape(const std::string & s) {
    static const std::regex special(R"([.^$|()*+?\[\]{}\\])");
    return std::regex_replace(s, special, "\\$&");
}

static std::string grammar_errors() {
    std::string out;
    for (auto & line : log_drain()) {
        if (line.first >= GGML_LOG_LEVEL_WARN) {
            out += (out.empty() ? "" : "; ") + line.second;
        }
    }
    return out;
}

void check_grammar(const Model & model, const std::string & gbnf) {
    log_drain();
    llama_sampler * s = llama_sampler_init_grammar(model.vocab(), gbnf.c_str(), "root");
    if (s == nullptr) {
        std::string why = grammar_errors();
        throw std::invalid_argument("invalid grammar" + (why.empty() ? std::string() : ": " + why));
    }
    llama_sampler_free(s);
}

void check_sampling(const Model & model, const SamplingParams & p) {
    // llama.cpp aborts on values it does not know: refuse them before a request is queued
    if (p.mirostat < 0 || p.mirostat > 2) {
        throw std::invalid_argument("mirostat must be 0, 1 or 2");
    }
    if (p.repeat_last_n < -1) {
        throw std::invalid_argument("repeat_last_n must be -1 (the whole context), 0 (off) or positive");
    }
    for (const auto & b : p.logit_bias) {
        model.check_tokens({ b.first });
    }
    if (!p.grammar.empty()) {
        check_grammar(model, p.grammar);
    }
}

common_sampler * make_sampler(const Model & model, const SamplingParams & p) {
    common_params_sampling c;
    c.temp            = p.temperature;
    c.top_k           = p.top_k;
    c.top_p           = p.top_p;
    c.min_p           = p.min_p;
    c.typ_p           = p.typical_p;
    c.penalty_repeat  = p.repeat_penalty <= 0.0f ? 1.0f : p.repeat_penalty;
    c.penalty_last_n  = p.repeat_last_n;
    c.penalty_present = p.presence_penalty;
    c.penalty_freq    = p.frequency_penalty;
    c.mirostat        = p.mirostat;
    c.mirostat_tau    = p.mirostat_tau;
    c.mirostat_eta    = p.mirostat_eta;
    c.seed            = p.seed < 0 ? LLAMA_DEFAULT_SEED : (uint32_t) p.seed;
    c.ignore_eos      = p.ignore_eos;
    c.no_perf         = true;
    c.dry_multiplier  = 0.0f;
    for (const auto & b : p.logit_bias) {
        c.logit_bias.push_back({b.first, b.second});
    }
    if (p.ignore_eos) {
        for (int32_t t : model.info().eog_tokens) {
            c.logit_bias_eog.push_back({t, -INFINITY});
        }
    }
    // penalize_newline is accepted and ignored, as in Ollama's current runner (deprecated option)
    if (!p.grammar.empty()) {
        c.grammar = common_grammar(p.grammar_from_template ? COMMON_GRAMMAR_TYPE_TOOL_CALLS : COMMON_GRAMMAR_TYPE_USER,
                                   p.grammar);
        c.grammar_lazy = p.grammar_lazy;
        for (const auto & w : p.trigger_words) {
            auto ids = model.tokenize(w, false, true);
            common_grammar_trigger t;
            if (ids.size() == 1) {
                t.type  = COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN;
                t.value = w;
                t.token = ids[0];
            } else {
                t.type  = COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN;
                t.value = regex_escape(w);
            }
            c.grammar_triggers.push_back(t);
        }
        for (const auto & pat : p.trigger_patterns) {
            c.grammar_triggers.push_back({COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL, pat, LLAMA_TOKEN_NULL});
        }
    }
    for (const auto & s : p.preserved_tokens) {
        auto ids = model.tokenize(s, false, true);
        if (ids.size() == 1) {
            c.preserved_tokens.insert(ids[0]);
        }
    }
    c.generation_prompt = p.generation_prompt;
    common_sampler * s = nullptr;
    try {
        s = common_sampler_init(model.raw(), c);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("invalid sampling options: ") + e.what());
    }
    if (s == nullptr) {
        std::string why = grammar_errors();
        throw std::invalid_argument("invalid sampling options" + (why.empty() ? std::string() : ": " + why));
    }
    return s;
}

std::string json_schema_to_gbnf(const std::string & schema_json) {
    try {
        common_json schema = common_json::parse(schema_json);
        return json_schema_to_grammar(schema);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("invalid JSON schema: ") + e.what());
    }
}

}  // namespace a3s
