// Prompt-lookup (n-gram) speculative drafting: when the text being generated repeats something
// already in the context (code edits, summaries, JSON rewrites), the tokens that followed the
// last occurrence of the current suffix are proposed as a draft, verified by the target model in
// the same batched decode as every other slot, and kept as far as the sampler agrees.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model.h"

struct llama_context;
struct common_batch;

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
    // with a draft and on steps without, measured on this machine as it runs. Where a wider
    // decode costs about its width (a CPU with compute-bound kernels) drafting cannot pay and is
    // switched off for longer and longer; where it is cheap (GPU, repacked kernels) it stays on.
    double  ns_plain     = 0;                  // EMA of ns per produced token without a draft
    double  sum_ns_draft = 0, sum_tok_draft = 0;  // ns and tokens of the drafted steps, over a window
    int32_t n_plain = 0, n_draft = 0;  // observations behind each (n_draft: in the window since the last probe)
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

// The tokens that followed the earlier occurrence of the last `ngram_min` tokens of `context` that
// agrees with the context for longest backwards (the alignment of a copy; ties: the most recent),
// at most n_draft of them: a match of n < ngram_max tokens proposes at most 4 * (n - ngram_min + 1).
std::vector<int32_t> ngram_lookup(const std::vector<int32_t> & context, int32_t n_draft, int32_t ngram_min = 3,
                                  int32_t ngram_max = 6);

// Why a draft model cannot draft for a target (llama.cpp common's compatibility rule: same vocab
// type, same BOS/EOS use and ids, vocab sizes within 128, same token texts); empty when it can.
std::string draft_incompatibility(const Model & target, const Model & draft);

// A small model with the target's vocabulary that drafts tokens greedily: its own context (one
// sequence per slot, the same threads), each sequence kept as the longest prefix of the slot's
// tokens it has evaluated, so a step evaluates only what is new and then the draft itself.
class DraftModel {
  public:
    // The caller has checked draft_incompatibility (the Engine does, before any context exists).
    // Throws std::runtime_error on no context.
    DraftModel(std::shared_ptr<Model> draft, const Model & target, int32_t n_ctx_seq, int32_t n_seq,
               int32_t n_threads);
    ~DraftModel();
    DraftModel(const DraftModel &)             = delete;
    DraftModel & operator=(const DraftModel &) = delete;

    // Up to `n` tokens the draft model would generate after `context` (the slot's tokens ending
    // with its last sampled one) in sequence `seq`; stops at an end-of-generation token.
    std::vector<int32_t> propose(int32_t seq, const std::vector<int32_t> & context, int32_t n);
    int64_t              decode_calls() const { return decode_calls_; }

  private:
    bool decode(int32_t seq, const int32_t * tokens, int32_t n, int32_t pos0);  // logits for the last

    std::shared_ptr<Model>            model_;
    llama_context *                   ctx_     = nullptr;
    int32_t                           n_batch_ = 512;
    int32_t                           n_ctx_seq_ = 0;
    int32_t                           n_vocab_ = 0;  // tokens both vocabularies have
    std::vector<std::vector<int32_t>> cache_;        // per sequence: tokens whose KV the context holds
    std::unique_ptr<common_batch>     batch_;        // reused by every decode, as the Engine's
    int64_t                           decode_calls_ = 0;
};

}  // namespace a3s
