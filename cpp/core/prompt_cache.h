// Host-RAM prompt cache: KV states of sequences a slot had to give up, kept in an LRU list bounded
// in bytes, so a returning conversation restores its longest cached prefix instead of
// re-evaluating it (llama-server's --cache-ram). Used from the decode thread only; stats() may be
// read from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <vector>

struct llama_context;

namespace a3s {

struct PromptCacheStats {
    int64_t hits = 0, misses = 0, saves = 0, evictions = 0;
    int64_t bytes = 0, entries = 0, limit_bytes = 0;
    int64_t tokens_restored = 0;
};

class PromptCache {
  public:
    explicit PromptCache(size_t limit_bytes) : limit_(limit_bytes) {}

    struct Match {
        int64_t id = -1;  // -1: no entry shares a prefix
        size_t  n  = 0;   // tokens of the prompt the entry holds
    };

    bool enabled() const { return limit_ > 0; }
    // The entry (same adapters) with the longest common prefix with `prompt`.
    Match find(const std::vector<int32_t> & prompt, const std::vector<float> & lora) const;
    // Copies sequence `seq`'s KV state (holding `tokens`) into the cache, evicting least recently
    // used entries to stay under the limit; entries that are a prefix of `tokens` are dropped.
    bool save(llama_context * ctx, int32_t seq, const std::vector<int32_t> & tokens, const std::vector<float> & lora);
    // Loads entry `id` into the (cleared) sequence `seq` and removes it from the cache (the slot
    // now holds it). False when the entry is gone or llama.cpp found no room.
    bool restore(llama_context * ctx, int64_t id, int32_t seq, std::vector<int32_t> & tokens);
    void note_miss();
    PromptCacheStats stats() const;

  private:
    struct Entry {
        int64_t              id = 0;
        std::vector<int32_t> tokens;
        std::vector<float>   lora;
        std::vector<uint8_t> data;
    };
    void evict_to(size_t limit);

    size_t             limit_;
    std::list<Entry>   lru_;  // front: most recently used
    mutable std::mutex mu_;
    PromptCacheStats   st_;
    int64_t            next_id_ = 1;
};

}  // namespace a3s
