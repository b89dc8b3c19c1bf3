// Per-request result queue: the decode thread pushes, Python drains on an eventfd wake-up.
// No Python in here: the engine thread never needs the GIL.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace a3s {

struct TopLogprob {
    int32_t     token = 0;
    std::string text;
    float       logprob = 0.0f;
};

struct TokenLogprob {
    int32_t                 token = 0;
    std::string             text;
    float                   logprob = 0.0f;
    std::vector<TopLogprob> top;
};

// One chunk of output: text that is final (UTF-8 complete, no partial stop string) and the
// tokens whose text it completes.
struct StreamEvent {
    std::string               text;
    std::vector<int32_t>      tokens;
    std::vector<TokenLogprob> logprobs;
};

// Timings and counts, as Ollama reports them (durations in nanoseconds).
struct Completion {
    std::string done_reason;        // "stop", "length", "cancel"
    int32_t     prompt_tokens   = 0;  // tokens in the prompt as submitted (after truncation)
    int32_t     prompt_eval     = 0;  // tokens actually evaluated (prefix reuse skips the rest)
    int32_t     cached_tokens   = 0;  // tokens reused from the KV cache
    int32_t     truncated       = 0;  // prompt tokens dropped to fit num_ctx
    int32_t     context_shifts  = 0;
    int32_t     eval_count      = 0;  // generated tokens
    int64_t     prompt_eval_ns  = 0;
    int64_t     eval_ns         = 0;
    int64_t     queue_ns        = 0;  // time waiting for a slot
    int32_t     slot            = -1;
    int32_t     media_tokens    = 0;  // prompt positions taken by images (in prompt_eval when evaluated)
    int32_t     media_chunks    = 0;  // images encoded for this request (0 when reused from the cache)
    int64_t     media_encode_ns = 0;  // image encode + decode time (part of prompt_eval_ns)
    int32_t     n_cached        = 0;  // tokens in the slot's cache when it finished (images count n_tokens)
    int32_t     next_pos        = 0;  // position the next token would take (images advance by n_pos)
    int32_t     kv_pos_max      = -1;  // highest position in the slot's KV sequence (llama_memory_seq_pos_max)
    std::vector<int32_t> context;  // prompt + generated tokens (Ollama's deprecated `context`)
};

class Channel {
  public:
    Channel();
    ~Channel();
    Channel(const Channel &) = delete;
    Channel & operator=(const Channel &) = delete;

    // producer side (decode thread)
    void push(StreamEvent ev);
    void finish(Completion c);           // closes the channel successfully
    void fail(const std::string & err);  // closes the channel with an error
    bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

    // consumer side (any thread; non-blocking)
    int  fileno() const { return fd_; }
    void cancel();
    // Moves queued events out. Returns false once closed and empty; `done`/`error` are then set.
    bool drain(std::vector<StreamEvent> & out, bool & done, Completion & completion, std::string & error);
    // Blocks until something is queued or the channel closes (for synchronous callers).
    void wait(int timeout_ms);

  private:
    void notify();

    int                     fd_ = -1;
    mutable std::mutex      mu_;
    std::deque<StreamEvent> queue_;
    bool                    closed_ = false;
    Completion              completion_;
    std::string             error_;
    std::atomic<bool>       cancelled_{false};
};

}  // namespace a3s
