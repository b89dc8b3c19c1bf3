#include "speculative.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "common.h"
#include "llama.h"

namespace a3s {

std::vector<int32_t> ngram_lookup(const std::vector<int32_t> & context, int32_t n_draft, int32_t ngram_min,
                                  int32_t ngram_max) {
    std::vector<int32_t> out;
    const int64_t        n = (int64_t) context.size();
    if (n_draft <= 0 || ngram_min <= 0 || n < ngram_min + 1) return out;
    // Every earlier occurrence of the last ngram_min tokens, extended backwards: the one that
    // agrees with the context for longest is where the text is being copied from (in a code edit
    // the same short n-gram recurs all over the block; only the aligned occurrence continues
    // right). Ties go to the most recent.
    constexpr int64_t max_back  = 256;
    const int32_t *   tok       = context.data();
    const int64_t     tail      = n - ngram_min;
    int64_t           best_from = -1, best_len = 0;
    for (int64_t start = tail - 1; start >= 0; --start) {
        if (!std::equal(tok + tail, tok + n, tok + start)) continue;
        int64_t len = ngram_min;
        while (len < max_back && start - (len - ngram_min) - 1 >= 0 &&
               tok[start - (len - ngram_min) - 1] == tok[tail - (len - ngram_min) - 1]) {
            ++len;
        }
        if (len > best_len) {
            best_len  = len;
            best_from = start + ngram_min;
            if (len == max_back) break;
        }
    }
    if (best_from < 0) return out;
    // a weak (short) match proposes a short draft, an alignment of ngram_max or more a full one
    const int64_t cap = best_len >= ngram_max ? n_draft : std::min<int64_t>(n_draft, 4 * (best_len - ngram_min + 1));
    const int64_t to  = std::min<int64_t>(best_from + cap, n);
    out.assign(context.begin() + best_from, context.begin() + to);
    return out;
}

void DraftState::reset(int32_t draft_max) {
    *this = DraftState{};
    n_max = std::max(0, draft_max);
    n_cur = std::min(n_max, 4);
}

bool DraftState::want_draft() {
    if (n_max <= 0) return false;
    if (cooldown > 0) {
        --cooldown;
        return false;
    }
    // until plain steps have been timed, every 4th step goes without a draft (the baseline)
    return !(n_plain < 4 && (++n_steps % 4) == 0);
}

std::vector<int32_t> DraftState::propose(const std::vector<int32_t> & context, int32_t room) {
    if (room <= 0 || !want_draft()) return {};
    return ngram_lookup(context, std::min(n_cur, room));
}

void DraftState::observe(int64_t ns, int32_t n_produced, int32_t n_drafted) {
    if (n_max <= 0 || n_produced <= 0 || ns <= 0) return;
    const double per_token = (double) ns / n_produced;
    constexpr double alpha = 0.15;
    if (n_drafted == 0) {
        ns_plain = n_plain == 0 ? per_token : ns_plain + alpha * (per_token - ns_plain);
        n_plain++;
        return;
    }
    // drafted steps are judged on their totals since the last probe: one draft that missed costs
    // its step (a wide decode for few tokens) but does not outweigh the run of kept ones around it
    // the way a moving average of per-step costs lets it
    sum_ns_draft += (double) ns;
    sum_tok_draft += n_produced;
    n_draft++;
    // judged after a few drafts against the plain baseline: no faster per token, no drafting
    if (n_draft >= 6 && n_plain >= 4) {
        if (sum_ns_draft / sum_tok_draft > 0.97 * ns_plain) {
            n_off        = std::min(n_off + 1, 8);
            cooldown     = 16 << n_off;
            n_draft      = 0;  // the next probe measures afresh
            sum_ns_draft = sum_tok_draft = 0;
        } else if (n_draft >= 32) {
            if (n_off > 0) n_off--;  // paying steadily: a later failure backs off less
            n_draft = 16;            // a window of the last ~32 drafted steps: halve the totals
            sum_ns_draft *= 0.5;
            sum_tok_draft *= 0.5;
        }
    }
}

void DraftState::update(int32_t n_drafted, int32_t n_accepted) {
    if (n_drafted <= 0) return;
    drafted += n_drafted;
    accepted += n_accepted;
    n_drafts++;
    if (n_accepted == n_drafted) {
        n_cur = std::min(n_max, n_cur * 2);  // all kept: draft further
    } else {
        n_cur = std::max(2, std::min(n_cur, n_accepted + 2));
    }
    n_missed = n_accepted == 0 ? n_missed + 1 : 0;
    // on the CPU a wider decode costs nearly its width: drafting pays only when most of it is kept
    win_drafted += n_drafted;
    win_accepted += n_accepted;
    const bool low_rate = win_drafted >= 32 && win_accepted * 10 < win_drafted * 6;
    if (win_drafted >= 32) win_drafted = win_accepted = 0;
    // drafts keep failing: back off for longer and longer (a failed draft costs a wider decode)
    if (n_missed >= 3 || low_rate) {
        n_missed = 0;
        n_off    = std::min(n_off + 1, 8);
        cooldown = 16 << n_off;
    }
}

std::string draft_incompatibility(const Model & target, const Model & draft) {
    const llama_vocab * vt = llama_model_get_vocab(target.raw());
    const llama_vocab * vd = llama_model_get_vocab(draft.raw());
    if (llama_vocab_type(vt) != llama_vocab_type(vd)) return "the tokenizer types differ";
    if (llama_vocab_get_add_bos(vt) != llama_vocab_get_add_bos(vd) ||
        (llama_vocab_get_add_bos(vt) && llama_vocab_bos(vt) != llama_vocab_bos(vd))) {
        return "the BOS tokens differ";
    }
    if (llama_vocab_get_add_eos(vt) != llama_vocab_get_add_eos(vd) ||
        (llama_vocab_get_add_eos(vt) && llama_vocab_eos(vt) != llama_vocab_eos(vd))) {
        return "the EOS tokens differ";
    }
    const int32_t nt = llama_vocab_n_tokens(vt), nd = llama_vocab_n_tokens(vd);
    if (std::abs(nt - nd) > 128) {
        return "the vocabulary sizes differ (" + std::to_string(nt) + " vs " + std::to_string(nd) + " tokens)";
    }
    for (int32_t i = 5; i < std::min(nt, nd); ++i) {  // llama.cpp skips the first 5 (special) ids
        if (std::strcmp(llama_vocab_get_text(vt, i), llama_vocab_get_text(vd, i)) != 0) {
            return "token " + std::to_string(i) + " differs";
        }
    }
    return "";
}

DraftModel::DraftModel(std::shared_ptr<Model> draft, const Model & target, int32_t n_ctx_seq, int32_t n_seq,
                       int32_t n_threads)
    : model_(std::move(draft)), n_ctx_seq_(n_ctx_seq) {
    llama_context_params cp = llama_context_default_params();
    cp.n_threads       = n_threads;
    cp.n_threads_batch = n_threads;
    cp.n_seq_max       = n_seq;
    cp.kv_unified      = true;
    cp.n_ctx           = (uint32_t) n_ctx_seq * n_seq;
    cp.n_batch         = n_batch_;
    cp.n_ubatch        = n_batch_;
    cp.no_perf         = true;
    ctx_               = llama_init_from_model(model_->raw(), cp);
    if (ctx_ == nullptr) throw std::runtime_error("failed to create the draft model's llama.cpp context");
    batch_ = std::make_unique<common_batch>(ctx_);
    n_vocab_ = std::min(llama_vocab_n_tokens(llama_model_get_vocab(model_->raw())),
                        llama_vocab_n_tokens(llama_model_get_vocab(target.raw())));
    cache_.resize(n_seq);
}

DraftModel::~DraftModel() {
    batch_.reset();
    if (ctx_) llama_free(ctx_);
}

bool DraftModel::decode(int32_t seq, const int32_t * tokens, int32_t n, int32_t pos0) {
    batch_->clear();
    for (int32_t i = 0; i < n; ++i) batch_->add(tokens[i], pos0 + i, seq, i + 1 == n);
    const int32_t ret = llama_process(ctx_, LLAMA_PROCESS_TYPE_DECODE, batch_->get());
    decode_calls_++;
    return ret == 0;
}

std::vector<int32_t> DraftModel::propose(int32_t seq, const std::vector<int32_t> & context, int32_t n) {
    std::vector<int32_t> out;
    if (seq < 0 || seq >= (int32_t) cache_.size() || context.empty() || n <= 0) return out;
    if ((int32_t) context.size() + n > n_ctx_seq_) return out;
    std::vector<int32_t> & cache = cache_[seq];
    llama_memory_t         mem   = llama_get_memory(ctx_);
    // keep the longest common prefix; the last context token is evaluated again for its logits
    size_t keep = 0;
    while (keep < cache.size() && keep + 1 < context.size() && cache[keep] == context[keep]) ++keep;
    if (keep < cache.size()) {
        llama_memory_seq_rm(mem, seq, (llama_pos) keep, -1);
        cache.resize(keep);
    }
    for (size_t at = keep; at < context.size(); at += n_batch_) {
        const int32_t len = (int32_t) std::min<size_t>(n_batch_, context.size() - at);
        if (!decode(seq, context.data() + at, len, (int32_t) at)) {
            llama_memory_seq_rm(mem, seq, -1, -1);
            cache.clear();
            return out;
        }
        cache.insert(cache.end(), context.begin() + at, context.begin() + at + len);
    }
    const llama_vocab * vocab = llama_model_get_vocab(model_->raw());
    for (int32_t i = 0; i < n; ++i) {
        const float * logits = llama_get_logits_ith(ctx_, -1);
        int32_t       best   = 0;
        for (int32_t t = 1; t < n_vocab_; ++t) {
            if (logits[t] > logits[best]) best = t;
        }
        if (llama_vocab_is_eog(vocab, best)) break;
        out.push_back(best);
        if (i + 1 == n) break;
        if (!decode(seq, &best, 1, (int32_t) cache.size())) {
            llama_memory_seq_rm(mem, seq, (llama_pos) cache.size(), -1);
            break;
        }
        cache.push_back(best);
    }
    return out;
}

}  // namespace a3s
