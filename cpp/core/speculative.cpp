#include "speculative.h"

#include <algorithm>

namespace a3s {

std::vector<int32_t> ngram_lookup(const std::vector<int32_t> & context, int32_t n_draft, int32_t ngram_min,
                                  int32_t ngram_max) {
    std::vector<int32_t> out;
    const int64_t        n = (int64_t) context.size();
    if (n_draft <= 0 || n < ngram_min + 1) return out;
    for (int32_t g = std::min<int64_t>(ngram_max, n - 1); g >= ngram_min; --g) {
        const int32_t * suffix = context.data() + n - g;
        // most recent earlier occurrence first: recent text predicts the continuation best
        for (int64_t start = n - g - 1; start >= 0; --start) {
            if (!std::equal(suffix, suffix + g, context.data() + start)) continue;
            const int64_t from = start + g;
            const int64_t cap  = std::min<int64_t>(n_draft, 4 * (g - ngram_min + 1));
            const int64_t to   = std::min<int64_t>(from + cap, n);
            out.assign(context.begin() + from, context.begin() + to);
            if (!out.empty()) return out;
        }
    }
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
    ns_draft = n_draft == 0 ? per_token : ns_draft + alpha * (per_token - ns_draft);
    n_draft++;
    // judged after a few drafts against the plain baseline: no faster per token, no drafting
    if (n_draft >= 6 && n_plain >= 4) {
        if (ns_draft > 0.97 * ns_plain) {
            n_off    = std::min(n_off + 1, 8);
            cooldown = 16 << n_off;
            n_draft  = 0;  // the next probe measures afresh
        } else if (n_off > 0 && n_draft >= 32) {
            n_off--;  // paying steadily: a later failure backs off less
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

}  // namespace a3s
