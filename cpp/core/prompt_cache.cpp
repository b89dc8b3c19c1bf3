#include "prompt_cache.h"

#include <algorithm>

#include "llama.h"

namespace a3s {

namespace {

size_t common_prefix(const std::vector<int32_t> & a, const std::vector<int32_t> & b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

}  // namespace

PromptCache::Match PromptCache::find(const std::vector<int32_t> & prompt, const std::vector<float> & lora) const {
    std::lock_guard<std::mutex> lock(mu_);
    Match best;
    for (const auto & e : lru_) {
        if (e.lora != lora) continue;
        const size_t n = common_prefix(e.tokens, prompt);
        if (n > best.n) {
            best.n  = n;
            best.id = e.id;
        }
    }
    return best;
}

bool PromptCache::save(llama_context * ctx, int32_t seq, const std::vector<int32_t> & tokens,
                       const std::vector<float> & lora) {
    if (!enabled() || tokens.empty()) return false;
    const size_t size = llama_state_seq_get_size_ext(ctx, seq, 0);
    if (size == 0 || size > limit_) return false;
    Entry e;
    e.tokens = tokens;
    e.lora   = lora;
    e.data.resize(size);
    const size_t written = llama_state_seq_get_data_ext(ctx, e.data.data(), size, seq, 0);
    if (written == 0) return false;
    e.data.resize(written);
    std::lock_guard<std::mutex> lock(mu_);
    // an entry that is a prefix of this one holds nothing more
    for (auto it = lru_.begin(); it != lru_.end();) {
        if (it->lora == lora && it->tokens.size() <= tokens.size() &&
            std::equal(it->tokens.begin(), it->tokens.end(), tokens.begin())) {
            st_.bytes -= (int64_t) it->data.size();
            it = lru_.erase(it);
        } else {
            ++it;
        }
    }
    evict_to(limit_ - written);
    e.id = next_id_++;
    st_.bytes += (int64_t) written;
    st_.saves++;
    lru_.push_front(std::move(e));
    st_.entries = (int64_t) lru_.size();
    return true;
}

bool PromptCache::restore(llama_context * ctx, int64_t id, int32_t seq, std::vector<int32_t> & tokens) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(lru_.begin(), lru_.end(), [id](const Entry & e) { return e.id == id; });
    if (it == lru_.end()) return false;
    const size_t read = llama_state_seq_set_data_ext(ctx, it->data.data(), it->data.size(), seq, 0);
    if (read == 0) {
        st_.misses++;
        return false;
    }
    tokens = std::move(it->tokens);
    st_.bytes -= (int64_t) it->data.size();
    st_.hits++;
    st_.tokens_restored += (int64_t) tokens.size();
    lru_.erase(it);
    st_.entries = (int64_t) lru_.size();
    return true;
}

void PromptCache::note_miss() {
    std::lock_guard<std::mutex> lock(mu_);
    st_.misses++;
}

void PromptCache::evict_to(size_t limit) {
    while (!lru_.empty() && (size_t) st_.bytes > limit) {
        st_.bytes -= (int64_t) lru_.back().data.size();
        lru_.pop_back();
        st_.evictions++;
    }
    st_.entries = (int64_t) lru_.size();
}

PromptCacheStats PromptCache::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    PromptCacheStats s = st_;
    s.limit_bytes      = (int64_t) limit_;
    s.entries          = (int64_t) lru_.size();
    return s;
}

}  // namespace a3s
