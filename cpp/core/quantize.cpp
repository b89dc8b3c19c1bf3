#include "quantize.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include "gguf.h"
#include "llama.h"
#include "log_capture.h"
#include "model.h"

namespace a3s {
namespace {

const std::map<std::string, llama_ftype> & table() {
    static const std::map<std::string, llama_ftype> t = {
        {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
        {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},     {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
        {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},
        {"q3_k_s", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"q3_k_m", LLAMA_FTYPE_MOSTLY_Q3_K_M},
        {"q3_k_l", LLAMA_FTYPE_MOSTLY_Q3_K_L}, {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S},
        {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q4_k", LLAMA_FTYPE_MOSTLY_Q4_K_M},
        {"q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
        {"q5_k", LLAMA_FTYPE_MOSTLY_Q5_K_M},   {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},
        {"f16", LLAMA_FTYPE_MOSTLY_F16},       {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
        {"f32", LLAMA_FTYPE_ALL_F32},
    };
    return t;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return (char) std::tolower(c); });
    return s;
}

}  // namespace

std::vector<std::string> quantize_types() {
    std::vector<std::string> out;
    for (const auto & kv : table()) out.push_back(kv.first);
    return out;
}

void quantize(const std::string & src, const std::string & dst, const std::string & ftype, int n_threads) {
    backend_init();
    auto it = table().find(lower(ftype));
    if (it == table().end()) {
        throw std::invalid_argument("unsupported quantization type " + ftype);
    }
    validate_gguf(src);
    gguf_init_params gp = {true, nullptr};
    gguf_context *   g  = gguf_init_from_file(src.c_str(), gp);
    if (g == nullptr) throw ModelError("corrupt GGUF: " + src);
    int64_t key = gguf_find_key(g, "general.file_type");
    int64_t src_ftype = key >= 0 ? (int64_t) gguf_get_val_u32(g, key) : -1;
    gguf_free(g);
    if (src_ftype != LLAMA_FTYPE_ALL_F32 && src_ftype != LLAMA_FTYPE_MOSTLY_F16 && src_ftype != LLAMA_FTYPE_MOSTLY_BF16) {
        throw std::invalid_argument("quantization is only supported for F16, BF16 and F32 models");
    }
    llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype   = it->second;
    qp.nthread = n_threads;
    log_drain();
    if (llama_model_quantize(src.c_str(), dst.c_str(), &qp) != 0) {
        std::string why;
        for (auto & line : log_drain()) {
            if (line.first >= GGML_LOG_LEVEL_WARN) why += (why.empty() ? "" : "; ") + line.second;
        }
        throw std::runtime_error("quantization failed" + (why.empty() ? std::string() : ": " + why));
    }
}

}  // namespace a3s
