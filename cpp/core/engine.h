// One engine per loaded model: a llama_context, N slots and one decode thread.
// Each iteration decodes one batch mixing every generating slot's next token with chunked
// prefill of waiting prompts (continuous batching). Results go out through Channels.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "channel.h"
#include "media.h"
#include "model.h"
#include "rpc.h"
#include "sampler.h"

struct llama_context;
struct common_batch;

namespace a3s {

struct BusyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct EngineParams {
    int32_t     n_ctx           = 4096;  // per slot (Ollama num_ctx)
    int32_t     n_parallel      = 1;     // slots (Ollama OLLAMA_NUM_PARALLEL)
    int32_t     n_batch         = 2048;  // logical batch (tokens per decode)
    int32_t     n_ubatch        = 512;   // physical batch
    int32_t     n_threads       = 0;     // 0: physical cores
    int32_t     n_threads_batch = 0;     // 0: same as n_threads
    int32_t     max_queue       = 512;   // waiting requests before BusyError
    bool        kv_unified      = true;  // one KV pool for all slots (fast); false: a stream per slot (batch-invariant)
    int32_t     flash_attn      = -1;    // -1 auto, 0 off, 1 on
    std::string cache_type_k    = "f16";
    std::string cache_type_v    = "f16";
    bool        embeddings      = false;  // embedding engine (pooled vectors, no generation)
    int32_t     pooling         = -1;     // -1: the model's pooling type
};

struct GenerateRequest {
    std::vector<int32_t>     prompt;
    SamplingParams           sampling;
    int32_t                  n_predict    = -1;    // -1: until EOG or context end
    int32_t                  n_keep       = 4;     // tokens kept on truncation / context shift
    bool                     truncate     = true;  // truncate an over-long prompt (else error)
    bool                     shift        = true;  // shift the context when full (else stop "length")
    bool                     cache_prompt = true;  // reuse a matching prefix in a slot's KV cache
    std::vector<std::string> stop;
    bool                     logprobs     = false;
    int32_t                  top_logprobs = 0;     // 0..20
    std::vector<float>       lora_scales;          // one per adapter loaded with the model; empty: all 1.0
    std::shared_ptr<const MediaPrompt> media;      // a prompt with images (Projector::tokenize): replaces `prompt`
};

struct EmbedRequest {
    std::vector<std::vector<int32_t>> inputs;
    bool                              normalize = true;
    bool                              truncate  = true;
};

struct EngineStats {
    int32_t n_slots = 0, n_active = 0, n_queued = 0;
    int64_t n_ctx = 0, n_batch = 0, n_ubatch = 0;
    int32_t pooling = -1;  // llama_pooling_type of an embedding engine (4 = rank)
    int64_t decode_calls = 0, tokens_decoded = 0;
    std::vector<int32_t> slot_cached_tokens;
};

class Engine {
  public:
    Engine(std::shared_ptr<Model> model, const EngineParams & params,
           std::shared_ptr<Projector> projector = nullptr);
    ~Engine();
    Engine(const Engine &) = delete;
    Engine & operator=(const Engine &) = delete;

    // Validates and queues a request; throws std::invalid_argument / BusyError.
    std::shared_ptr<Channel> submit(GenerateRequest req);
    // Pooled embeddings for each input, computed on the decode thread (blocks the caller).
    std::vector<std::vector<float>> embed(const EmbedRequest & req, std::vector<int32_t> & n_tokens);
    // Ends every request with an error and joins the decode thread. Idempotent.
    void        shutdown(const std::string & reason = "model unloaded");
    EngineStats stats();
    // Non-empty once an RPC worker this engine uses lost its connection: the engine has ended its
    // requests and refuses new ones; the model must be unloaded and loaded again.
    std::string            broken();
    std::vector<DeviceUse> memory() const { return memory_breakdown(ctx_); }

    const Model &        model() const { return *model_; }
    const EngineParams & params() const { return params_; }
    const std::shared_ptr<Projector> & projector() const { return projector_; }
    int32_t              n_ctx_slot() const { return n_ctx_slot_; }

  private:
    struct Job;
    struct Slot;
    struct EmbedJob;

    void loop();
    bool admit(std::unique_lock<std::mutex> & lock);
    void start_slot(Slot & slot, std::unique_ptr<Job> job);
    void step();
    void sample_slot(Slot & slot, int32_t i_batch);
    void emit(Slot & slot, bool flush);
    void finish(Slot & slot, const std::string & reason);
    void fail_slot(Slot & slot, const std::string & err);
    bool make_room(Slot & slot);
    void run_embed(EmbedJob & job);
    bool rpc_lost();  // checks for a lost RPC worker after a decode; ends every request if so
    bool step_media(Slot & slot);  // vision: decode the media chunk a prefilling slot has reached

    std::shared_ptr<Model> model_;
    EngineParams           params_;
    std::shared_ptr<Projector> projector_;
    llama_context *        ctx_        = nullptr;
    int32_t                n_ctx_slot_ = 0;
    int32_t                n_batch_    = 0;
    std::unique_ptr<common_batch> batch_;

    std::mutex                          mu_;
    std::condition_variable             cv_;
    std::deque<std::unique_ptr<Job>>    queue_;
    std::deque<EmbedJob *>              embed_queue_;
    bool                                stopping_ = false;
    std::string                         stop_reason_;
    std::string                         broken_;
    uint64_t                            rpc_epoch_ = rpc_failure_count();
    std::vector<std::unique_ptr<Slot>>  slots_;
    std::vector<float>                  current_lora_;
    size_t                              rr_ = 0;
    std::atomic<int64_t>                decode_calls_{0}, tokens_decoded_{0};
    std::atomic<int32_t>                n_active_{0};
    std::thread                         thread_;
};

}  // namespace a3s
