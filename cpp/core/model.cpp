#include "model.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "chat.h"
#include "common.h"
#include "gguf.h"
#include "json.h"
#include "llama.h"
#include "log.h"
#include "log_capture.h"
#include "rpc.h"

namespace a3s {

void backend_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        log_install();
        common_log_set_verbosity_thold(LOG_LEVEL_ERROR);
        llama_backend_init();
    });
}

std::string system_info() {
    backend_init();
    return llama_print_system_info();
}

void validate_gguf(const std::string & path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        throw ModelError("model file not found: " + path);
    }
    if (!S_ISREG(st.st_mode)) {
        throw ModelError("model path is not a regular file: " + path);
    }
    FILE * f = fopen(path.c_str(), "rb");
    if (f == nullptr) {
        throw ModelError("cannot open model file: " + path + ": " + strerror(errno));
    }
    char     magic[4] = {0, 0, 0, 0};
    uint32_t version  = 0;
    size_t   n_magic  = fread(magic, 1, 4, f);
    size_t   n_ver    = fread(&version, sizeof(version), 1, f);
    fclose(f);
    if (n_magic != 4 || memcmp(magic, "GGUF", 4) != 0) {
        throw ModelError("not a GGUF model file (bad magic): " + path);
    }
    if (n_ver != 1 || version < 2 || version > 3) {
        throw ModelError("unsupported GGUF version " + std::to_string(version) + ": " + path);
    }
    gguf_init_params gp = {/*no_alloc=*/true, /*ctx=*/nullptr};
    gguf_context *   g  = gguf_init_from_file(path.c_str(), gp);
    if (g == nullptr) {
        throw ModelError("corrupt or truncated GGUF header: " + path);
    }
    // data section must hold every tensor
    const size_t  data_off = gguf_get_data_offset(g);
    const int64_t n_tensors = gguf_get_n_tensors(g);
    uint64_t      need      = data_off;
    for (int64_t i = 0; i < n_tensors; ++i) {
        uint64_t end = data_off + gguf_get_tensor_offset(g, i) + gguf_get_tensor_size(g, i);
        if (end > need) {
            need = end;
        }
    }
    gguf_free(g);
    if ((uint64_t) st.st_size < need) {
        throw ModelError("truncated GGUF file: " + path + " has " + std::to_string(st.st_size) +
                         " bytes, its tensors need " + std::to_string(need));
    }
}

std::shared_ptr<Model> Model::load(const std::string & path, const ModelParams & params) {
    backend_init();
    validate_gguf(path);
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = params.n_gpu_layers;
    mp.main_gpu           = params.main_gpu;
    mp.vocab_only         = params.vocab_only;
    mp.use_extra_bufts    = params.cpu_repack;
    if (params.use_mlock) {
        mp.load_mode = params.use_mmap ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MLOCK;
    } else if (!params.use_mmap) {
        mp.load_mode = LLAMA_LOAD_MODE_NONE;
    }
    RpcPlacement placement;  // the device list and split must outlive the load call
    if (!params.rpc_servers.empty()) {
        placement       = rpc_placement(path, params.rpc_servers, params.tensor_split, params.n_gpu_layers);
        mp.devices      = placement.devices.data();
        mp.tensor_split = placement.split.data();
        mp.n_gpu_layers = placement.n_gpu_layers;
    }
    std::shared_ptr<Model> m(new Model());
    m->path_        = path;
    m->rpc_servers_ = params.rpc_servers;
    m->model_ = llama_model_load_from_file(path.c_str(), mp);
    if (m->model_ == nullptr) {
        std::string detail;
        for (auto & line : log_drain()) {
            if (line.first >= GGML_LOG_LEVEL_WARN) {
                detail += (detail.empty() ? "" : "; ") + line.second;
            }
        }
        throw ModelError("failed to load model " + path + (detail.empty() ? "" : ": " + detail));
    }
    m->vocab_ = llama_model_get_vocab(m->model_);
    for (const auto & lp : params.lora_paths) {
        validate_gguf(lp);
        log_drain();
        llama_adapter_lora * a = llama_adapter_lora_init(m->model_, lp.c_str());
        if (a == nullptr) {
            std::string detail;
            for (auto & line : log_drain()) {
                if (line.first >= GGML_LOG_LEVEL_WARN) detail += (detail.empty() ? "" : "; ") + line.second;
            }
            throw ModelError("failed to load LoRA adapter " + lp +
                             (detail.empty() ? " (does it match the base model?)" : ": " + detail));
        }
        m->loras_.push_back(a);
    }
    m->fill_info();
    if (!params.vocab_only) {
        try {
            m->templates_ = common_chat_templates_init(m->model_, "");
        } catch (const std::exception &) {
            m->templates_ = common_chat_templates_init(nullptr, "chatml");
        }
    }
    return m;
}

Model::~Model() {
    templates_.reset();
    overrides_.clear();
    for (auto * a : loras_) {
        llama_adapter_lora_free(a);
    }
    if (model_ != nullptr) {
        llama_model_free(model_);
    }
}

static std::string meta_str(const llama_model * m, const char * key) {
    char    buf[512];
    int32_t n = llama_model_meta_val_str(m, key, buf, sizeof(buf));
    return n < 0 ? std::string() : std::string(buf);
}

void Model::fill_info() {
    ModelInfo & i = info_;
    i.architecture  = meta_str(model_, "general.architecture");
    i.name          = meta_str(model_, "general.name");
    char desc[256]  = {0};
    llama_model_desc(model_, desc, sizeof(desc));
    i.description     = desc;
    const char * ft   = llama_ftype_name(llama_model_ftype(model_));
    i.file_type       = ft ? ft : "";
    i.parameter_count = llama_model_n_params(model_);
    i.size_bytes      = llama_model_size(model_);
    i.context_length  = llama_model_n_ctx_train(model_);
    i.embedding_length = llama_model_n_embd(model_);
    i.n_layer   = llama_model_n_layer(model_);
    i.n_head    = llama_model_n_head(model_);
    i.n_head_kv = llama_model_n_head_kv(model_);
    i.n_vocab   = llama_vocab_n_tokens(vocab_);
    i.bos_token = llama_vocab_bos(vocab_);
    i.eos_token = llama_vocab_eos(vocab_);
    i.add_bos   = llama_vocab_get_add_bos(vocab_);
    i.add_eos   = llama_vocab_get_add_eos(vocab_);
    for (int32_t t = 0; t < i.n_vocab; ++t) {
        if (llama_vocab_is_eog(vocab_, t)) {
            i.eog_tokens.push_back(t);
        }
    }
    i.has_encoder  = llama_model_has_encoder(model_);
    i.has_decoder  = llama_model_has_decoder(model_);
    i.is_recurrent = llama_model_is_recurrent(model_);
    const std::string pooling = meta_str(model_, (i.architecture + ".pooling_type").c_str());
    i.pooling_type = pooling.empty() ? -1 : std::atoi(pooling.c_str());
    const char * tmpl = llama_model_chat_template(model_, nullptr);
    i.chat_template   = tmpl ? tmpl : "";
    const int32_t n_meta = llama_model_meta_count(model_);
    std::vector<char> key(256), val(1 << 16);
    for (int32_t k = 0; k < n_meta; ++k) {
        if (llama_model_meta_key_by_index(model_, k, key.data(), key.size()) < 0) {
            continue;
        }
        int32_t n = llama_model_meta_val_str_by_index(model_, k, val.data(), val.size());
        if (n < 0) {
            continue;
        }
        i.metadata[key.data()] = std::string(val.data(), std::min<size_t>(n, val.size() - 1));
    }
}

void Model::check_tokens(const std::vector<int32_t> & tokens) const {
    for (int32_t t : tokens) {
        if (t < 0 || t >= info_.n_vocab) {
            throw std::invalid_argument("token id " + std::to_string(t) + " is out of range [0, " +
                                        std::to_string(info_.n_vocab) + ")");
        }
    }
}

std::vector<int32_t> Model::tokenize(const std::string & text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out(text.size() + 8);
    int32_t n = llama_tokenize(vocab_, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(),
                               add_special, parse_special);
    if (n == INT32_MIN) {
        throw std::invalid_argument("text too long to tokenize");
    }
    if (n < 0) {
        out.resize(-n);
        n = llama_tokenize(vocab_, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(),
                           add_special, parse_special);
    }
    out.resize(std::max(n, 0));
    return out;
}

std::string Model::detokenize(const std::vector<int32_t> & tokens, bool remove_special, bool unparse_special) const {
    check_tokens(tokens);
    std::string out(tokens.size() * 8 + 16, '\0');
    int32_t     n = llama_detokenize(vocab_, tokens.data(), (int32_t) tokens.size(), out.data(), (int32_t) out.size(),
                                     remove_special, unparse_special);
    if (n < 0) {
        out.resize(-n);
        n = llama_detokenize(vocab_, tokens.data(), (int32_t) tokens.size(), out.data(), (int32_t) out.size(),
                             remove_special, unparse_special);
    }
    out.resize(std::max(n, 0));
    return out;
}

std::string Model::token_to_piece(int32_t token, bool special) const {
    check_tokens({token});
    char    buf[256];
    int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof(buf), 0, special);
    if (n < 0) {
        std::string big(-n, '\0');
        n = llama_token_to_piece(vocab_, token, big.data(), (int32_t) big.size(), 0, special);
        big.resize(std::max(n, 0));
        return big;
    }
    return std::string(buf, n);
}

std::vector<int32_t> Model::rerank_input(const std::string & query, const std::string & document) const {
    const char * tmpl = llama_model_chat_template(model_, "rerank");
    if (tmpl != nullptr) {
        std::string prompt = tmpl;
        for (const auto & kv : {std::make_pair(std::string("{query}"), query),
                                std::make_pair(std::string("{document}"), document)}) {
            for (size_t pos = prompt.find(kv.first); pos != std::string::npos;
                 pos = prompt.find(kv.first, pos + kv.second.size())) {
                prompt.replace(pos, kv.first.size(), kv.second);
            }
        }
        return tokenize(prompt, false, true);
    }
    llama_token eos = llama_vocab_eos(vocab_);
    if (eos == LLAMA_TOKEN_NULL) eos = llama_vocab_sep(vocab_);
    std::vector<int32_t> out;
    if (llama_vocab_get_add_bos(vocab_)) out.push_back(llama_vocab_bos(vocab_));
    auto q = tokenize(query, false, false);
    out.insert(out.end(), q.begin(), q.end());
    if (llama_vocab_get_add_eos(vocab_)) out.push_back(eos);
    if (llama_vocab_get_add_sep(vocab_)) out.push_back(llama_vocab_sep(vocab_));
    auto d = tokenize(document, false, false);
    out.insert(out.end(), d.begin(), d.end());
    if (llama_vocab_get_add_eos(vocab_)) out.push_back(eos);
    return out;
}

int32_t Model::n_cls_out() const {
    return (int32_t) llama_model_n_cls_out(model_);
}

bool Model::is_eog(int32_t token) const {
    return llama_vocab_is_eog(vocab_, token);
}

ChatRender Model::render_chat(const ChatRenderOptions & opts) const {
    if (!templates_) {
        throw std::invalid_argument("model was loaded vocab-only: no chat template");
    }
    std::shared_ptr<common_chat_templates> tmpls = templates_;
    if (!opts.template_override.empty()) {
        std::lock_guard<std::mutex> lock(override_mu_);
        auto &                      slot = overrides_[opts.template_override];
        if (!slot) {
            try {
                slot = common_chat_templates_init(model_, opts.template_override);
            } catch (const std::exception & e) {
                overrides_.erase(opts.template_override);
                throw std::invalid_argument(std::string("invalid chat template: ") + e.what());
            }
        }
        tmpls = slot;
    }
    common_chat_templates_inputs in;
    try {
        in.messages = common_chat_msgs_parse_oaicompat(common_json::parse(opts.messages_json));
        if (!opts.tools_json.empty()) {
            in.tools = common_chat_tools_parse_oaicompat(common_json::parse(opts.tools_json));
        }
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("invalid messages: ") + e.what());
    }
    in.tool_choice           = common_chat_tool_choice_parse_oaicompat(opts.tool_choice);
    in.json_schema           = opts.json_schema;
    in.add_generation_prompt = opts.add_generation_prompt;
    in.enable_thinking       = opts.enable_thinking;
    in.parallel_tool_calls   = opts.parallel_tool_calls;
    in.chat_template_kwargs  = opts.kwargs;
    in.reasoning_format      = COMMON_REASONING_FORMAT_AUTO;
    in.use_jinja             = true;
    in.add_bos               = info_.add_bos;
    in.add_eos               = info_.add_eos;
    common_chat_params p;
    try {
        p = common_chat_templates_apply(tmpls.get(), in);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("chat template error: ") + e.what());
    }
    ChatRender r;
    r.prompt            = p.prompt;
    r.format            = common_chat_format_name(p.format);
    r.grammar           = p.grammar;
    r.grammar_lazy      = p.grammar_lazy;
    for (const auto & t : p.grammar_triggers) {
        if (t.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD || t.type == COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN) {
            r.trigger_words.push_back(t.value);
        } else {
            r.trigger_patterns.push_back(t.value);
        }
    }
    r.preserved_tokens   = p.preserved_tokens;
    r.additional_stops   = p.additional_stops;
    r.generation_prompt  = p.generation_prompt;
    r.parser             = p.parser;
    r.supports_thinking  = p.supports_thinking;
    r.thinking_start_tag = p.thinking_start_tag;
    r.thinking_end_tags  = p.thinking_end_tags;
    return r;
}

}  // namespace a3s
