// Prompt-lookup (n-gram) speculative drafting: when the text being generated repeats something
// already in the context (code edits, summaries, JSON rewrites), the tokens that followed the
// last occurrence of the current suffix are proposed as a draft, verified by the target model in
// the same batched decode as every other slot, and kept as far as the sampler agrees.
#pragma once

#include <cstdint>
#include <vector>

namespace a3s {

struct DraftState {
    int32_t n_max       = 0;  // request's draft_max (0: off)
    int32_t n_cur       = 0;  // current draft length (adapts to acceptance)
    int32_t n_drafts    = 0;  // drafts verified since the last reset
    int32_t n_missed    = 0;  // consecutive drafts of which nothing was accepted
    int32_t cooldown    = 0;  // steps without drafting after drafts kept failing
    int32_t n_off       = 0;  // times it backed off (grows the cooldown)
    int64_t drafted     = 0;  // tokens proposed
    int64_t accepted    = 0;  // tokens accepted
    int32_t win_drafted = 0, win_accepted = 0;  // the current window of ~32 drafted tokens
    // Cost gate: what a produced token costs in wall time (decode + sampling + drafting) on steps
    // with a draft and on steps without, measured on this machine as it runs (EMAs). Where a wider
    // decode costs about its width (a CPU with compute-bound kernels) drafting cannot pay and is
    // switched off for longer and longer; where it is cheap (GPU, repacked kernels) it stays on.
    double  ns_plain = 0, ns_draft = 0;  // EMA of ns per produced token without / with a draft
    int32_t n_plain = 0, n_draft = 0;    // observations behind each EMA (n_draft since the last probe)
    int32_t n_steps = 0;                 // proposals asked for (exploration cadence)

    void reset(int32_t draft_max);
    bool active() const { return n_max > 0; }
    // Draft for the next step (empty: none this step) taken from `context` (every token whose KV
    // is or will be cached, ending with the last sampled token), at most `room` tokens.
    std::vector<int32_t> propose(const std::vector<int32_t> & context, int32_t room);
    // Feedback after verification: `n_accepted` of `n_drafted` proposed tokens were kept.
    void update(int32_t n_drafted, int32_t n_accepted);
    // Feedback on cost: a step that took `ns` produced `n_produced` tokens for this slot, with a
    // draft of `n_drafted` tokens (0: a plain step). Backs off when drafting costs more per token.
    void observe(int64_t ns, int32_t n_produced, int32_t n_drafted);
    bool want_draft();  // false: this step goes without a draft (cooldown or exploration)
};

// The tokens that followed the most recent earlier occurrence of the longest suffix n-gram of
// `context` (n from ngram_max down to ngram_min), at most n_draft of them, and at most
// 4 * (n - ngram_min + 1): a weak (short) match proposes a short draft.
std::vector<int32_t> ngram_lookup(const std::vector<int32_t> & context, int32_t n_draft, int32_t ngram_min = 3,
                                  int32_t ngram_max = 6);

}  // namespace a3s
