// A loaded GGUF model: weights, vocab, metadata, chat templates. Immutable after load and
// safe to share between threads (tokenize / render / metadata are thread-safe).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct llama_model;
struct llama_vocab;
struct common_chat_templates;
struct llama_adapter_lora;

namespace a3s {

// Raised for bad model files (missing, not GGUF, truncated, unsupported).
struct ModelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ModelParams {
    int32_t     n_gpu_layers = -1;  // -1: all layers (0 on a CPU-only build)
    int32_t     main_gpu     = 0;
    bool        use_mmap     = true;
    bool        use_mlock    = false;
    bool        vocab_only   = false;
    bool        cpu_repack   = true;   // llama.cpp's repacked CPU weight layouts (faster, batch-size dependent rounding)
    std::vector<std::string> lora_paths;  // adapters loaded with the model
    std::vector<std::string> rpc_servers;   // host:port of ggml RPC workers to split the layers across
    std::vector<float>       tensor_split;  // with rpc_servers: [local share, one per worker device]
};

struct ModelInfo {
    std::string architecture;
    std::string name;
    std::string description;       // llama_model_desc, e.g. "llama 135M Q4_1"
    std::string file_type;         // e.g. "Q4_1"
    uint64_t    parameter_count = 0;
    uint64_t    size_bytes      = 0;
    int32_t     context_length  = 0;
    int32_t     embedding_length = 0;
    int32_t     n_layer = 0;
    int32_t     n_head  = 0;
    int32_t     n_head_kv = 0;
    int32_t     n_vocab = 0;
    int32_t     bos_token = -1;
    int32_t     eos_token = -1;
    std::vector<int32_t> eog_tokens;
    bool        add_bos = false;
    bool        add_eos = false;
    bool        has_encoder = false;
    bool        has_decoder = true;
    bool        is_recurrent = false;
    int32_t     pooling_type = -1;
    std::string chat_template;
    std::map<std::string, std::string> metadata;  // scalar GGUF key/values as strings
};

// Output of rendering a conversation through the model's chat template.
struct ChatRender {
    std::string              prompt;
    std::string              format;
    std::string              grammar;
    bool                     grammar_lazy = false;
    std::vector<std::string> trigger_words;     // WORD triggers
    std::vector<std::string> trigger_patterns;  // PATTERN / PATTERN_FULL triggers
    std::vector<std::string> preserved_tokens;
    std::vector<std::string> additional_stops;
    std::string              generation_prompt;
    std::string              parser;
    bool                     supports_thinking = false;
    std::string              thinking_start_tag;
    std::vector<std::string> thinking_end_tags;
};

struct ChatRenderOptions {
    std::string messages_json;        // OpenAI-shaped message array
    std::string tools_json;           // OpenAI-shaped tool array, or ""
    std::string tool_choice = "auto";
    std::string json_schema;          // "" or a JSON schema string
    std::string template_override;    // "" = the model's template
    bool        add_generation_prompt = true;
    bool        enable_thinking       = true;
    bool        parallel_tool_calls   = false;
    std::map<std::string, std::string> kwargs;  // chat_template_kwargs (JSON-encoded values)
};

class Model {
  public:
    static std::shared_ptr<Model> load(const std::string & path, const ModelParams & params);
    ~Model();
    Model(const Model &) = delete;
    Model & operator=(const Model &) = delete;

    const ModelInfo &   info() const { return info_; }
    const std::string & path() const { return path_; }
    llama_model *       raw() const { return model_; }
    const llama_vocab * vocab() const { return vocab_; }
    size_t              n_lora() const { return loras_.size(); }
    llama_adapter_lora * lora(size_t i) const { return loras_.at(i); }
    const std::vector<std::string> & rpc_servers() const { return rpc_servers_; }

    std::vector<int32_t> tokenize(const std::string & text, bool add_special, bool parse_special) const;
    std::string          detokenize(const std::vector<int32_t> & tokens, bool remove_special, bool unparse_special) const;
    std::string          token_to_piece(int32_t token, bool special) const;
    bool                 is_eog(int32_t token) const;
    void                 check_tokens(const std::vector<int32_t> & tokens) const;  // throws std::invalid_argument

    ChatRender render_chat(const ChatRenderOptions & opts) const;

    // Tokens scored by a reranker for (query, document): the model's "rerank" template when it has
    // one, else [BOS] query [EOS] [SEP] document [EOS] as the vocab asks (llama-server's recipe).
    std::vector<int32_t> rerank_input(const std::string & query, const std::string & document) const;
    int32_t              n_cls_out() const;

  private:
    Model() = default;
    void fill_info();

    std::string                path_;
    llama_model *              model_ = nullptr;
    const llama_vocab *        vocab_ = nullptr;
    ModelInfo                  info_;
    std::shared_ptr<common_chat_templates> templates_;
    mutable std::mutex                     override_mu_;  // guards the compiled template overrides
    mutable std::map<std::string, std::shared_ptr<common_chat_templates>> overrides_;
    std::vector<llama_adapter_lora *> loras_;
    std::vector<std::string>          rpc_servers_;
};

// Header-level check of a GGUF file (magic, version, KV and tensor tables, data bounds).
// Throws ModelError with a message a user can act on. Never calls into code that aborts.
void validate_gguf(const std::string & path);

// Process-wide llama.cpp initialisation (idempotent).
void backend_init();
std::string system_info();

}  // namespace a3s
