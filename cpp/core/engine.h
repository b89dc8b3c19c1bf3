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
#include <utility>
#include <vector>

#include "channel.h"
#include "media.h"
#include "model.h"
#include "rpc.h"
#include "prompt_cache.h"
#include "speculative.h"
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
    // Cross-slot prefix sharing: a new request starts from the longest prefix any slot holds (idle
    // or generating); arrivals with the same long prefix wait for the one evaluating it.
    bool        share_prefix    = true;
    int32_t     share_min       = 32;     // shortest prefix worth sharing or waiting for (tokens)
    int64_t     cache_ram_mib   = 8192;   // host-RAM prompt cache (A3S_POWER_CACHE_RAM); 0: off
    int32_t     draft_max       = 0;      // speculative draft length for requests that do not say (0: off;
                                          // with a draft model 0 means 8)
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
    int32_t                  draft_max    = -1;    // speculative n-gram draft length: -1 engine default, 0 off, 1..64
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
    int64_t prompt_evaluated = 0;  // prompt tokens decoded
    int64_t prompt_shared    = 0;  // prompt tokens taken from another slot's KV cells
    int64_t prompt_restored  = 0;  // prompt tokens restored from the RAM prompt cache
    int64_t prompt_waits     = 0;  // requests that waited for another slot's prefill of their prefix
    int64_t draft_tokens     = 0;  // speculative tokens proposed
    int64_t draft_accepted   = 0;  // speculative tokens the sampler agreed with
    int64_t draft_decodes    = 0;  // decode calls of the draft model (0 without one)
    PromptCacheStats cache;
    std::vector<int32_t> slot_cached_tokens;
};

class Engine {
  public:
    // `draft`: a model with the same vocabulary that drafts for speculative decoding (checked
    // here: std::invalid_argument when it cannot).
    Engine(std::shared_ptr<Model> model, const EngineParams & params,
           std::shared_ptr<Projector> projector = nullptr, std::shared_ptr<Model> draft = nullptr);
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
    bool                 has_draft_model() const { return draft_ != nullptr; }
    int32_t              n_ctx_slot() const { return n_ctx_slot_; }

  private:
    struct Job;
    struct Slot;
    struct EmbedJob;

    void loop();
    bool admit(std::unique_lock<std::mutex> & lock);
    void start_slot(Slot & slot, std::unique_ptr<Job> job);
    void step();
    int32_t sample_slot(Slot & slot, int32_t i_batch);
    // speculative decoding: n-gram draft added to a generating slot's batch entry, then verified
    void add_draft(Slot & slot, common_batch & batch, int32_t room);
    std::vector<int32_t> propose_with_model(Slot & slot, int32_t room);
    int32_t verify_draft(Slot & slot, int32_t i_batch);  // tokens of the draft kept
    void    observe_step_cost(const std::vector<std::pair<Slot *, std::pair<int32_t, int32_t>>> & produced,
                              int64_t ns);
    void emit(Slot & slot, bool flush);
    void finish(Slot & slot, const std::string & reason);
    void fail_slot(Slot & slot, const std::string & err);
    bool make_room(Slot & slot);
    // prefix reuse at admission: own cache, another slot's cells, the RAM cache, or wait
    void plan_prefix(Slot & slot);
    void share_from(Slot & dst, Slot & src, size_t n);
    bool restore_from_cache(Slot & slot, int64_t id, size_t n);
    void save_to_cache(Slot & slot, size_t keep);
    void poll_waiting();
    void run_embed(EmbedJob & job);
    bool rpc_lost();  // checks for a lost RPC worker after a decode; ends every request if so
    bool step_media(Slot & slot);  // vision: decode the media chunk a prefilling slot has reached

    std::shared_ptr<Model> model_;
    EngineParams           params_;
    std::shared_ptr<Projector> projector_;
    std::unique_ptr<DraftModel> draft_;  // speculative draft model (none: n-gram drafting)
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
    std::atomic<int64_t>                draft_tokens_{0}, draft_accepted_{0}, draft_decodes_{0};
    std::atomic<int64_t>                prompt_evaluated_{0}, prompt_shared_{0}, prompt_restored_{0}, prompt_waits_{0};
    std::unique_ptr<PromptCache>        prompt_cache_;
    uint64_t                            job_serial_ = 0;
    std::atomic<int32_t>                n_active_{0};
    std::thread                         thread_;
};

}  // namespace a3s
