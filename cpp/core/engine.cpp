#include "engine.h"

#include <thread>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>

#include "common.h"
#include "llama.h"
#include "sampling.h"

namespace a3s {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ns_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

ggml_type kv_type(const std::string & name) {
    if (name == "f16" || name.empty()) return GGML_TYPE_F16;
    if (name == "f32") return GGML_TYPE_F32;
    if (name == "bf16") return GGML_TYPE_BF16;
    if (name == "q8_0") return GGML_TYPE_Q8_0;
    if (name == "q4_0") return GGML_TYPE_Q4_0;
    if (name == "q4_1") return GGML_TYPE_Q4_1;
    if (name == "q5_0") return GGML_TYPE_Q5_0;
    if (name == "q5_1") return GGML_TYPE_Q5_1;
    throw std::invalid_argument("unsupported KV cache type: " + name);
}

// Length of the longest prefix of `s` that is a complete UTF-8 sequence run.
size_t utf8_complete_prefix(const std::string & s) {
    size_t n = s.size();
    // look back at most 3 bytes for an unfinished lead byte
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        unsigned char c = (unsigned char) s[n - back];
        if ((c & 0xC0) == 0x80) {
            continue;  // continuation byte
        }
        size_t need = 1;
        if ((c & 0xE0) == 0xC0) need = 2;
        else if ((c & 0xF0) == 0xE0) need = 3;
        else if ((c & 0xF8) == 0xF0) need = 4;
        return back < need ? n - back : n;
    }
    return n;
}

// Bytes at the end of `text` that could still become the start of a stop string.
size_t partial_stop_len(const std::string & text, const std::vector<std::string> & stops) {
    size_t best = 0;
    for (const auto & stop : stops) {
        size_t max_len = std::min(stop.size() - 1, text.size());
        for (size_t len = max_len; len > best; --len) {
            if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
                best = len;
                break;
            }
        }
    }
    return best;
}

size_t common_prefix(const std::vector<int32_t> & a, const std::vector<int32_t> & b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

}  // namespace

struct Engine::Job {
    GenerateRequest          req;
    std::shared_ptr<Channel> ch;
    Clock::time_point        enqueued;
};

struct Engine::EmbedJob {
    const EmbedRequest *                             req = nullptr;
    std::promise<std::vector<std::vector<float>>>    result;
    std::vector<int32_t> *                           n_tokens = nullptr;
};

struct Engine::Slot {
    enum class State { Idle, Prefill, Generate };
    int32_t                  id    = 0;
    State                    state = State::Idle;
    std::vector<int32_t>     cache;       // tokens in this sequence's KV cells (MEDIA_TOKEN under images)
    MediaSpans               cache_media;  // images in `cache` (id, size; no pixels)
    MediaSpans               prompt_media; // images in `prompt` (with their chunks until decoded)
    int32_t                  pos_delta = 0;  // cache.size() - next position (M-RoPE images take fewer)
    std::vector<float>       cache_lora;  // adapter scales the cache was computed with
    std::unique_ptr<Job>     job;
    std::vector<int32_t>     prompt;
    size_t                   n_prompt_done = 0;
    common_sampler *         smpl          = nullptr;
    int32_t                  last_token    = -1;
    int32_t                  i_batch       = -1;
    std::string              pending;
    std::vector<int32_t>     pending_tokens;
    std::vector<TokenLogprob> pending_lp;
    std::vector<int32_t>     generated;
    Completion               done;
    Clock::time_point        t_start, t_first, t_used;
    uint64_t                 serial      = 0;        // job counter: tells a waiter its source moved on
    size_t                   shared      = 0;        // leading cells possibly shared with other seqs (unified pool)
    Slot *                   wait_for    = nullptr;  // slot evaluating the prefix this one will attach to
    uint64_t                 wait_serial = 0;
    size_t                   wait_len    = 0;
    DraftState               spec;
    std::vector<int32_t>     draft;  // tokens proposed in the current batch, after last_token

    llama_pos pos() const { return (llama_pos) cache.size() - pos_delta; }
    void      clear_cache() {
        cache.clear();
        cache_media.clear();
        pos_delta = 0;
    }

    ~Slot() {
        if (smpl) common_sampler_free(smpl);
    }
};

Engine::Engine(std::shared_ptr<Model> model, const EngineParams & params, std::shared_ptr<Projector> projector,
               std::shared_ptr<Model> draft)
    : model_(std::move(model)), params_(params), projector_(std::move(projector)) {
    backend_init();
    if (draft != nullptr) {  // before any context exists: an incompatible draft is a clear error
        const std::string why = draft_incompatibility(*model_, *draft);
        if (!why.empty()) {
            throw std::invalid_argument(
                "the draft model cannot draft for this model: its vocabulary does not match (" + why + ")");
        }
    }
    if (params_.n_parallel < 1 || params_.n_parallel > 256) {
        throw std::invalid_argument("num_parallel must be between 1 and 256");
    }
    if (params_.n_ctx < 16) {
        throw std::invalid_argument("num_ctx must be at least 16");
    }
    // every generating slot puts one token in each batch: a smaller batch would overflow it
    params_.n_batch  = std::max(params_.n_batch, params_.n_parallel);
    params_.n_ubatch = std::max(params_.n_ubatch, 1);
    llama_context_params cp = llama_context_default_params();
    // more threads than 2x the cores only slows decoding, and thousands fail to start (libgomp exits)
    const int32_t max_threads = 2 * (int32_t) std::max(1u, std::thread::hardware_concurrency());
    const int32_t threads     = std::min(params_.n_threads > 0 ? params_.n_threads : common_cpu_get_num_math(), max_threads);
    cp.n_threads       = threads;
    cp.n_threads_batch = params_.n_threads_batch > 0 ? std::min(params_.n_threads_batch, max_threads) : threads;
    cp.n_seq_max       = params_.n_parallel;
    cp.kv_unified      = params_.kv_unified;
    cp.n_ctx           = (uint32_t) params_.n_ctx * (params_.kv_unified ? params_.n_parallel : params_.n_parallel);
    cp.n_batch         = params_.n_batch;
    cp.n_ubatch        = std::min(params_.n_ubatch, params_.n_batch);
    cp.swa_full        = true;  // keep whole SWA caches so prefixes stay reusable
    cp.no_perf         = true;
    cp.type_k          = kv_type(params_.cache_type_k);
    cp.type_v          = kv_type(params_.cache_type_v);
    cp.flash_attn_type = params_.flash_attn < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO
                         : params_.flash_attn == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                   : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (params_.embeddings) {
        cp.embeddings = true;
        int32_t pooling = params_.pooling >= 0 ? params_.pooling : model_->info().pooling_type;
        cp.pooling_type = pooling >= 0 ? static_cast<enum llama_pooling_type>(pooling) : LLAMA_POOLING_TYPE_MEAN;
        if (cp.pooling_type == LLAMA_POOLING_TYPE_NONE) cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        cp.n_ctx    = params_.n_ctx;
        cp.n_batch  = params_.n_ctx;
        cp.n_ubatch = params_.n_ctx;  // non-causal models need a whole input in one ubatch
        cp.n_seq_max = 1;
    }
    ctx_ = llama_init_from_model(model_->raw(), cp);
    if (ctx_ == nullptr) {
        throw std::runtime_error("failed to create a llama.cpp context (n_ctx " + std::to_string(cp.n_ctx) +
                                 "); try a smaller num_ctx");
    }
    // llama.cpp pads context sizes to 256; a slot still holds exactly the num_ctx asked for
    n_ctx_slot_ = std::min<int32_t>(params_.n_ctx, params_.embeddings   ? (int32_t) llama_n_ctx(ctx_)
                                                   : params_.kv_unified ? (int32_t) llama_n_ctx(ctx_)
                                                                        : (int32_t) llama_n_ctx_seq(ctx_));
    n_batch_    = (int32_t) llama_n_batch(ctx_);
    batch_      = std::make_unique<common_batch>(ctx_);
    const int32_t n_slots = params_.embeddings ? 1 : params_.n_parallel;
    for (int32_t i = 0; i < n_slots; ++i) {
        auto s = std::make_unique<Slot>();
        s->id  = i;
        s->cache_lora.assign(model_->n_lora(), 0.0f);
        slots_.push_back(std::move(s));
    }
    current_lora_.assign(model_->n_lora(), 0.0f);
    if (!params_.embeddings && params_.cache_ram_mib > 0) {
        prompt_cache_ = std::make_unique<PromptCache>((size_t) params_.cache_ram_mib * 1024 * 1024);
    }
    if (llama_model_is_recurrent(model_->raw()) || llama_model_is_hybrid(model_->raw())) {
        params_.share_prefix = false;  // no partial sequence copies for recurrent state
    }
    if (draft != nullptr && !params_.embeddings) {
        try {
            draft_ = std::make_unique<DraftModel>(std::move(draft), *model_, n_ctx_slot_, n_slots, cp.n_threads);
        } catch (...) {
            llama_free(ctx_);
            ctx_ = nullptr;
            throw;
        }
        if (params_.draft_max == 0) params_.draft_max = 8;  // a draft model is there to draft
    }
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
    shutdown("engine destroyed");
    slots_.clear();
    batch_.reset();
    draft_.reset();
    if (ctx_) llama_free(ctx_);
}

void Engine::shutdown(const std::string & reason) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
            // already stopping; fall through to join
        } else {
            stopping_    = true;
            stop_reason_ = reason;
        }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Channel> Engine::submit(GenerateRequest req) {
    if (params_.embeddings) {
        throw std::invalid_argument("this model is loaded for embeddings only and cannot generate");
    }
    if (req.media) {
        if (!projector_) throw std::invalid_argument("this model was loaded without a projector and cannot take images");
        req.prompt = req.media->tokens;
        std::vector<int32_t> text;
        for (int32_t t : req.prompt) if (t != MEDIA_TOKEN) text.push_back(t);
        model_->check_tokens(text);
        if (!req.prompt.empty() && req.prompt.back() == MEDIA_TOKEN) {
            throw std::invalid_argument("a prompt cannot end with an image");
        }
        if ((int32_t) req.prompt.size() >= n_ctx_slot_) {
            throw std::invalid_argument("the prompt with its images (" + std::to_string(req.prompt.size()) +
                                        " tokens) is longer than the context length (" +
                                        std::to_string(n_ctx_slot_) + "); images cannot be truncated");
        }
    }
    if (req.prompt.empty()) {
        throw std::invalid_argument("empty prompt");
    }
    if (!req.media) model_->check_tokens(req.prompt);
    check_sampling(*model_, req.sampling);  // everything the decode thread's sampler needs, before queueing
    if (req.top_logprobs < 0 || req.top_logprobs > 20) {
        throw std::invalid_argument("top_logprobs must be between 0 and 20");
    }
    if (!req.lora_scales.empty() && req.lora_scales.size() != model_->n_lora()) {
        throw std::invalid_argument("lora scales: expected " + std::to_string(model_->n_lora()) + " values");
    }
    if (req.lora_scales.empty()) {
        req.lora_scales.assign(model_->n_lora(), 1.0f);  // as Ollama: adapters apply at full scale
    }
    req.stop.erase(std::remove(req.stop.begin(), req.stop.end(), std::string()), req.stop.end());
    if ((int32_t) req.prompt.size() >= n_ctx_slot_ && !req.truncate) {
        throw std::invalid_argument(
            "the prompt is longer than the context length currently available to the model; shorten the prompt, "
            "adjust the context length in settings, or use a model with a longer context length");
    }
    if (req.draft_max < -1 || req.draft_max > 64) {
        throw std::invalid_argument("draft_max must be between 0 and 64 (or -1 for the server default)");
    }
    if (req.draft_max == -1) req.draft_max = std::clamp(params_.draft_max, 0, 64);
    if (req.sampling.repeat_last_n < 0) req.sampling.repeat_last_n = n_ctx_slot_;  // Ollama: -1 = num_ctx
    if (req.n_predict < 0 || req.n_predict > 10 * n_ctx_slot_) {
        req.n_predict = 10 * n_ctx_slot_;  // Ollama bounds generation to 10 x num_ctx
    }
    auto job      = std::make_unique<Job>();
    job->ch       = std::make_shared<Channel>();
    job->enqueued = Clock::now();
    job->req      = std::move(req);
    auto ch       = job->ch;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
            throw std::runtime_error(broken_.empty() ? "model is unloading" : broken_);
        }
        if ((int32_t) queue_.size() >= params_.max_queue) {
            throw BusyError("server busy, please try again.  maximum pending requests exceeded");
        }
        queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return ch;
}

std::vector<std::vector<float>> Engine::embed(const EmbedRequest & req, std::vector<int32_t> & n_tokens) {
    if (!params_.embeddings) {
        throw std::invalid_argument("this engine was not created for embeddings");
    }
    for (const auto & in : req.inputs) {
        model_->check_tokens(in);
        if (in.empty()) throw std::invalid_argument("cannot embed an empty input");
        if ((int32_t) in.size() > n_ctx_slot_ && !req.truncate) {
            throw std::invalid_argument("the input length exceeds the context length");
        }
    }
    EmbedJob job;
    job.req      = &req;
    job.n_tokens = &n_tokens;
    auto fut     = job.result.get_future();
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) throw std::runtime_error("model is unloading");
        embed_queue_.push_back(&job);
    }
    cv_.notify_one();
    return fut.get();
}

EngineStats Engine::stats() {
    EngineStats s;
    std::lock_guard<std::mutex> lock(mu_);
    s.n_slots  = (int32_t) slots_.size();
    s.n_active = n_active_.load();
    s.n_queued = (int32_t) queue_.size();
    s.n_ctx    = n_ctx_slot_;
    s.n_batch  = n_batch_;
    s.n_ubatch = llama_n_ubatch(ctx_);
    s.pooling        = ctx_ ? (int32_t) llama_pooling_type(ctx_) : -1;
    s.decode_calls   = decode_calls_.load();
    s.tokens_decoded = tokens_decoded_.load();
    s.prompt_evaluated = prompt_evaluated_.load();
    s.prompt_shared    = prompt_shared_.load();
    s.prompt_restored  = prompt_restored_.load();
    s.prompt_waits     = prompt_waits_.load();
    s.draft_tokens     = draft_tokens_.load();
    s.draft_accepted   = draft_accepted_.load();
    s.draft_decodes    = draft_decodes_.load();
    if (prompt_cache_) s.cache = prompt_cache_->stats();
    return s;
}

void Engine::loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
        cv_.wait(lock, [this] {
            return stopping_ || !queue_.empty() || !embed_queue_.empty() || n_active_.load() > 0;
        });
        if (stopping_) break;
        while (!embed_queue_.empty()) {
            EmbedJob * ej = embed_queue_.front();
            embed_queue_.pop_front();
            lock.unlock();
            run_embed(*ej);
            lock.lock();
        }
        admit(lock);
        if (n_active_.load() == 0) continue;
        lock.unlock();
        step();
        lock.lock();
    }
    // fail everything still pending
    std::deque<std::unique_ptr<Job>> pending;
    pending.swap(queue_);
    std::deque<EmbedJob *> pending_embed;
    pending_embed.swap(embed_queue_);
    lock.unlock();
    for (auto & job : pending) job->ch->fail(stop_reason_);
    for (auto * ej : pending_embed) ej->result.set_exception(std::make_exception_ptr(std::runtime_error(stop_reason_)));
    for (auto & slot : slots_) {
        if (slot->state != Slot::State::Idle) fail_slot(*slot, stop_reason_);
    }
}

// Moves queued jobs into idle slots: longest common prefix first, else least recently used.
bool Engine::admit(std::unique_lock<std::mutex> & lock) {
    bool admitted = false;
    while (!queue_.empty()) {
        auto & job = queue_.front();
        if (job->ch->cancelled()) {
            job->ch->finish(Completion{"cancel"});
            queue_.pop_front();
            continue;
        }
        Slot * best     = nullptr;
        size_t best_lcp = 0;
        Slot * lru      = nullptr;
        for (auto & s : slots_) {
            if (s->state != Slot::State::Idle) continue;
            if (lru == nullptr || s->t_used < lru->t_used) lru = s.get();
            if (!job->req.cache_prompt || s->cache_lora != job->req.lora_scales) continue;
            static const MediaSpans no_media;
            const size_t lcp = media_common_prefix(s->cache, s->cache_media, job->req.prompt,
                                                   job->req.media ? job->req.media->spans : no_media);
            if (lcp > best_lcp) {
                best_lcp = lcp;
                best     = s.get();
            }
        }
        if (lru == nullptr) break;  // no idle slot
        Slot * slot = (best != nullptr && best_lcp * 10 >= job->req.prompt.size()) ? best : lru;
        std::unique_ptr<Job> taken = std::move(job);
        queue_.pop_front();
        lock.unlock();
        start_slot(*slot, std::move(taken));
        lock.lock();
        admitted = true;
    }
    return admitted;
}

void Engine::start_slot(Slot & slot, std::unique_ptr<Job> job) {
    GenerateRequest & req = job->req;
    slot.done            = Completion{};
    slot.done.queue_ns   = ns_between(job->enqueued, Clock::now());
    slot.done.slot       = slot.id;
    slot.t_start         = Clock::now();
    slot.t_used          = slot.t_start;
    slot.job             = std::move(job);
    slot.pending.clear();
    slot.pending_tokens.clear();
    slot.pending_lp.clear();
    slot.generated.clear();
    slot.i_batch = -1;
    slot.draft.clear();
    slot.spec.reset(slot.job->req.draft_max);

    // Ollama semantics: a prompt that does not fit keeps its first num_keep (+BOS) tokens and the
    // most recent tail, shortened to num_ctx - max((num_ctx - num_keep) / 2, 1) tokens.
    std::vector<int32_t> prompt = req.prompt;
    const int32_t        n_ctx  = n_ctx_slot_;
    if ((int32_t) prompt.size() >= n_ctx) {
        const int32_t bos     = model_->info().add_bos ? 1 : 0;
        const int32_t keep    = std::clamp(req.n_keep + bos, 0, n_ctx - 4);
        const int32_t target  = n_ctx - std::max((n_ctx - keep) / 2, 1);
        const int32_t discard = (int32_t) prompt.size() - target;
        prompt.erase(prompt.begin() + keep, prompt.begin() + keep + discard);
        slot.done.truncated = discard;
    }
    slot.prompt             = std::move(prompt);
    slot.prompt_media       = req.media ? req.media->spans : MediaSpans{};
    slot.done.prompt_tokens = (int32_t) slot.prompt.size();
    slot.done.media_tokens  = req.media ? req.media->n_media_tokens : 0;

    slot.serial             = ++job_serial_;
    slot.wait_for           = nullptr;
    slot.n_prompt_done      = 0;
    slot.done.cached_tokens = 0;
    if (slot.prompt_media.empty() && slot.cache_media.empty()) {
        slot.pos_delta = 0;
        plan_prefix(slot);  // text only: own slot, any other slot's prefix, or the RAM cache
    } else {
        // media in the prompt or in this slot's cache: only this slot's own prefix (same image id
        // and token count) is reused; positions follow the media chunks' n_pos
        llama_memory_t mem    = llama_get_memory(ctx_);
        size_t         n_past = 0;
        if (req.cache_prompt && slot.cache_lora == req.lora_scales) {
            n_past = media_common_prefix(slot.cache, slot.cache_media, slot.prompt, slot.prompt_media);
        }
        if (n_past == slot.prompt.size()) --n_past;  // always evaluate at least one token
        n_past           = media_run_start(slot.prompt_media, n_past);
        MediaSpans kept  = slot.cache_media;
        int32_t    delta = media_truncate(kept, n_past);
        if (!llama_memory_seq_rm(mem, slot.id, (llama_pos) n_past - delta, -1)) {
            llama_memory_seq_rm(mem, slot.id, -1, -1);
            n_past = 0;
            kept.clear();
            delta = 0;
        }
        slot.cache.resize(n_past);
        slot.cache_media = std::move(kept);
        slot.pos_delta   = delta;
        slot.shared      = std::min(slot.shared, n_past);
        slot.cache_lora         = req.lora_scales;
        slot.n_prompt_done      = n_past;
        slot.done.cached_tokens = (int32_t) n_past;
    }

    try {
        slot.smpl = make_sampler(*model_, req.sampling);
    } catch (const std::exception & e) {
        slot.job->ch->fail(e.what());
        slot.job.reset();
        return;
    }
    for (int32_t t : slot.prompt) {
        if (t != MEDIA_TOKEN) common_sampler_accept(slot.smpl, t, false);  // prime penalties
    }
    slot.state = Slot::State::Prefill;
    n_active_.fetch_add(1);
}

// Where a new prompt's evaluation starts: the longest prefix held by this slot's own cells, by any
// other slot's cells (idle or generating; shared, not copied, in the unified pool), or by the RAM
// prompt cache. When a slot still prefilling will hold a longer prefix, the slot waits for it
// (poll_waiting) instead of evaluating the same tokens again. Cells this slot gives up are saved
// to the RAM cache first.
void Engine::plan_prefix(Slot & slot) {
    const GenerateRequest & req    = slot.job->req;
    const auto &            prompt = slot.prompt;
    llama_memory_t          mem    = llama_get_memory(ctx_);
    const size_t            cap    = prompt.size() - 1;  // always evaluate at least one token
    const size_t            min_n  = (size_t) std::max(1, params_.share_min);
    const bool              reuse  = req.cache_prompt;

    size_t own = reuse && slot.cache_lora == req.lora_scales ? std::min(common_prefix(slot.cache, prompt), cap) : 0;
    Slot * src = nullptr, *pend = nullptr;
    size_t src_n = 0, pend_n = 0;
    if (reuse && params_.share_prefix) {
        for (auto & sp : slots_) {
            Slot * o = sp.get();
            if (o == &slot || o->cache_lora != req.lora_scales) continue;
            const size_t n = std::min(common_prefix(o->cache, prompt), cap);
            if (n > src_n) {
                src_n = n;
                src   = o;
            }
            if (o->state == Slot::State::Prefill && o->wait_for == nullptr && o->job) {
                const size_t m = std::min(common_prefix(o->prompt, prompt), cap);
                if (m > pend_n) {
                    pend_n = m;
                    pend   = o;
                }
            }
        }
    }
    PromptCache::Match hit;
    if (reuse && prompt_cache_) hit = prompt_cache_->find(prompt, req.lora_scales);
    hit.n = std::min(hit.n, cap);

    const size_t have = std::max({ own, src_n, hit.n });
    if (pend != nullptr && pend_n >= have + min_n) {
        slot.wait_for    = pend;
        slot.wait_serial = pend->serial;
        slot.wait_len    = pend_n;
        prompt_waits_++;
        return;
    }
    enum class From { Own, Share, Restore } from = From::Own;
    if (hit.n > own && hit.n > src_n && hit.n >= min_n) {
        from = From::Restore;
    } else if (src != nullptr && src_n > own && src_n >= min_n) {
        from = From::Share;
    }
    // what this slot keeps of its own cells is `own` tokens (a share or a restore replaces the rest
    // with the same prefix), so the rest of them go to the RAM cache unless little is lost
    save_to_cache(slot, own);
    if (prompt_cache_ && reuse && from != From::Restore && cap >= min_n) prompt_cache_->note_miss();

    bool ok = true;
    if (from == From::Share) {
        share_from(slot, *src, src_n);
    } else if (from == From::Restore) {
        ok = restore_from_cache(slot, hit.id, hit.n);
    } else if (!llama_memory_seq_rm(mem, slot.id, (llama_pos) own, -1)) {
        ok = false;
    } else {
        slot.cache.resize(own);
        slot.shared = std::min(slot.shared, own);
    }
    if (!ok) {
        llama_memory_seq_rm(mem, slot.id, -1, -1);
        slot.cache.clear();
        slot.shared = 0;
    }
    slot.cache_lora         = req.lora_scales;
    slot.n_prompt_done      = slot.cache.size();
    slot.done.cached_tokens = (int32_t) slot.cache.size();
}

// Gives `dst` the first `n` cells of `src`: shared cells in the unified pool (metadata only), a
// stream copy trimmed to `n` with a KV stream per slot.
void Engine::share_from(Slot & dst, Slot & src, size_t n) {
    llama_memory_t mem = llama_get_memory(ctx_);
    llama_memory_seq_rm(mem, dst.id, -1, -1);
    if (params_.kv_unified) {
        llama_memory_seq_cp(mem, src.id, dst.id, 0, (llama_pos) n);
        dst.shared = n;
        src.shared = std::max(src.shared, n);
    } else {
        llama_memory_seq_cp(mem, src.id, dst.id, -1, -1);  // cross-stream copies are whole streams only
        llama_memory_seq_rm(mem, dst.id, (llama_pos) n, -1);
        dst.shared = 0;
    }
    dst.cache.assign(src.cache.begin(), src.cache.begin() + (std::ptrdiff_t) n);
    prompt_shared_ += (int64_t) n;
}

bool Engine::restore_from_cache(Slot & slot, int64_t id, size_t n) {
    llama_memory_t mem = llama_get_memory(ctx_);
    llama_memory_seq_rm(mem, slot.id, -1, -1);
    slot.cache.clear();
    slot.shared = 0;
    std::vector<int32_t> tokens;
    if (!prompt_cache_->restore(ctx_, id, slot.id, tokens)) return false;
    if (!llama_memory_seq_rm(mem, slot.id, (llama_pos) n, -1)) return false;
    tokens.resize(n);
    slot.cache = std::move(tokens);
    prompt_restored_ += (int64_t) n;
    return true;
}

// Before a slot gives up cells for another prompt: keep them in the RAM cache unless little is
// lost or an entry already holds them all.
void Engine::save_to_cache(Slot & slot, size_t keep) {
    if (!prompt_cache_ || slot.cache.size() < keep + (size_t) std::max(1, params_.share_min)) return;
    if (prompt_cache_->find(slot.cache, slot.cache_lora).n >= slot.cache.size()) return;
    prompt_cache_->save(ctx_, slot.id, slot.cache, slot.cache_lora);
}

// Waiting slots attach once the slot they wait for has evaluated their prefix (or moved on).
void Engine::poll_waiting() {
    for (auto & sp : slots_) {
        Slot & s = *sp;
        if (s.state != Slot::State::Prefill || s.wait_for == nullptr) continue;
        const Slot & p    = *s.wait_for;
        const bool   same = p.serial == s.wait_serial && p.state != Slot::State::Idle;
        if (same && p.state == Slot::State::Prefill && p.cache.size() < s.wait_len) continue;
        s.wait_for = nullptr;
        plan_prefix(s);
    }
}

// Context full: shift (drop half after num_keep) when allowed, else stop with "length".
bool Engine::make_room(Slot & slot) {
    if ((int32_t) slot.cache.size() + 1 <= n_ctx_slot_) return true;
    llama_memory_t mem = llama_get_memory(ctx_);
    if (!slot.job->req.shift || !llama_memory_can_shift(mem) || !slot.cache_media.empty()) {  // no shift over images
        finish(slot, "length");
        return false;
    }
    const int32_t n_past    = (int32_t) slot.cache.size();
    const int32_t n_keep    = std::clamp(slot.job->req.n_keep, 0, n_ctx_slot_ - 4);
    const int32_t n_left    = n_past - n_keep;
    int32_t       n_discard = std::max(1, n_left / 2);
    // cells shared with other sequences never move: discard at least up to the end of the shared prefix
    if ((int32_t) slot.shared > n_keep + n_discard) n_discard = (int32_t) slot.shared - n_keep;
    if (n_discard >= n_left) {
        finish(slot, "length");
        return false;
    }
    slot.shared = std::min<size_t>(slot.shared, (size_t) n_keep);
    llama_memory_seq_rm(mem, slot.id, n_keep, n_keep + n_discard);
    llama_memory_seq_add(mem, slot.id, n_keep + n_discard, n_past, -n_discard);
    slot.cache.erase(slot.cache.begin() + n_keep, slot.cache.begin() + n_keep + n_discard);
    slot.done.context_shifts++;
    return true;
}

void Engine::step() {
    // cancelled requests free their slot before the next decode
    for (auto & sp : slots_) {
        Slot & s = *sp;
        if (s.state != Slot::State::Idle && s.job->ch->cancelled()) finish(s, "cancel");
    }
    poll_waiting();
    // one adapter set per batch: take the set of the first active slot after the round-robin cursor
    std::vector<Slot *> active;
    for (size_t k = 0; k < slots_.size(); ++k) {
        Slot & s = *slots_[(rr_ + k) % slots_.size()];
        if (s.state != Slot::State::Idle) active.push_back(&s);
    }
    rr_ = (rr_ + 1) % slots_.size();
    if (active.empty()) return;
    std::vector<float> lora = active.front()->job->req.lora_scales;
    if (lora != current_lora_) {
        std::vector<llama_adapter_lora *> adapters;
        std::vector<float>                scales;
        for (size_t i = 0; i < lora.size(); ++i) {
            if (lora[i] != 0.0f) {
                adapters.push_back(model_->lora(i));
                scales.push_back(lora[i]);
            }
        }
        llama_set_adapters_lora(ctx_, adapters.data(), adapters.size(), scales.data());
        current_lora_ = lora;
    }

    common_batch & batch = *batch_;
    batch.clear();
    std::vector<Slot *> in_batch;
    const auto          t_step = Clock::now();  // drafting, decode and sampling: the cost gate's step time
    // 1. every generating slot contributes its last sampled token, in slot order (stable layout),
    //    followed by its speculative draft when it has one
    int32_t n_gen = 0;
    for (auto & sp : slots_) n_gen += sp->state == Slot::State::Generate ? 1 : 0;
    for (auto & sp : slots_) {
        Slot * s = sp.get();
        if (s->state == Slot::State::Idle) continue;
        if (s->state != Slot::State::Generate || s->job->req.lora_scales != lora) continue;
        n_gen--;
        if (!make_room(*s)) continue;
        s->i_batch = batch.size();
        batch.add(s->last_token, s->pos(), s->id, true);
        s->cache.push_back(s->last_token);
        add_draft(*s, batch, n_batch_ - batch.size() - n_gen);
        in_batch.push_back(s);
    }
    // 2. prompt chunks fill the rest, slots taken in round-robin order; at most one image per step
    //    is decoded (a separate decode for that slot), so the others' tokens wait one encode at most
    bool media_done = false;
    bool has_prompt = false;  // a step with prompt tokens says nothing about a generating step's cost
    for (Slot * s : active) {
        if (s->state != Slot::State::Prefill || s->wait_for != nullptr || s->job->req.lora_scales != lora) continue;
        if (!media_done && s->prompt_media.count(s->n_prompt_done)) {
            media_done = true;
            if (!step_media(*s)) continue;
        }
        int32_t room = n_batch_ - batch.size();
        if (room <= 0) break;
        size_t n = std::min<size_t>(room, s->prompt.size() - s->n_prompt_done);
        auto   next_media = s->prompt_media.lower_bound(s->n_prompt_done);
        if (next_media != s->prompt_media.end()) n = std::min(n, next_media->first - s->n_prompt_done);
        if (n == 0) continue;
        for (size_t k = 0; k < n; ++k) {
            const bool last = s->n_prompt_done + 1 == s->prompt.size();
            if (last) s->i_batch = batch.size();
            int32_t tok = s->prompt[s->n_prompt_done];
            batch.add(tok, s->pos(), s->id, last);
            s->cache.push_back(tok);
            s->n_prompt_done++;
            s->done.prompt_eval++;
        }
        prompt_evaluated_ += (int64_t) n;
        in_batch.push_back(s);
        has_prompt = true;
    }
    if (batch.size() == 0) return;

    const int32_t ret = llama_process(ctx_, LLAMA_PROCESS_TYPE_DECODE, batch.get());
    decode_calls_++;
    tokens_decoded_ += batch.size();
    if (rpc_lost()) return;
    if (ret != 0) {
        const std::string err = ret == 1 ? "context size exceeded (no KV cache room)"
                                         : "llama_decode failed with code " + std::to_string(ret);
        for (Slot * s : in_batch) {
            llama_memory_seq_rm(llama_get_memory(ctx_), s->id, -1, -1);
            s->clear_cache();
            fail_slot(*s, err);
        }
        return;
    }
    std::vector<std::pair<Slot *, std::pair<int32_t, int32_t>>> produced;  // slot, (tokens, drafted)
    for (Slot * s : in_batch) {
        if (s->state == Slot::State::Idle || s->i_batch < 0) continue;
        const int32_t idx = s->i_batch;
        s->i_batch        = -1;
        const bool generating = s->state == Slot::State::Generate;
        if (!s->draft.empty()) {
            const int32_t n_draft = (int32_t) s->draft.size();
            const int32_t kept    = verify_draft(*s, idx);
            produced.push_back({s, {1 + kept, n_draft}});
        } else {
            sample_slot(*s, idx);
            if (generating) produced.push_back({s, {1, 0}});
        }
    }
    if (!has_prompt) observe_step_cost(produced, ns_between(t_step, Clock::now()));
}

// The cost gate's input: every generating slot of a pure generation step learns what the step
// cost per token it produced, with or without its draft.
void Engine::observe_step_cost(const std::vector<std::pair<Slot *, std::pair<int32_t, int32_t>>> & produced,
                               int64_t ns) {
    for (const auto & [slot, counts] : produced) {
        if (slot->state == Slot::State::Idle) continue;  // finished this step: nothing more to tune
        slot->spec.observe(ns, counts.first, counts.second);
    }
}

// Proposes up to `room` draft tokens (n-gram lookup over the slot's tokens) right after its last
// token in this step's batch; every draft position outputs logits for verification.
void Engine::add_draft(Slot & slot, common_batch & batch, int32_t room) {
    slot.draft.clear();
    if (!slot.spec.active() || !slot.cache_media.empty()) return;  // no drafts over media positions
    room = std::min(room, n_ctx_slot_ - (int32_t) slot.cache.size() - 1);
    const int32_t left = slot.job->req.n_predict - slot.done.eval_count - 1;  // tokens still allowed after this one
    room               = std::min(room, left);
    if (room <= 0) return;
    slot.draft = draft_ ? propose_with_model(slot, room) : slot.spec.propose(slot.cache, room);
    for (int32_t tok : slot.draft) {
        batch.add(tok, (llama_pos) slot.cache.size(), slot.id, true);
        slot.cache.push_back(tok);
    }
}

// The draft model's proposal for a slot: its greedy continuation of the slot's tokens, as long as
// the slot's adaptive draft length (the same DraftState gates and sizes it as n-gram drafts).
std::vector<int32_t> Engine::propose_with_model(Slot & slot, int32_t room) {
    if (room <= 0 || !slot.spec.want_draft()) return {};
    const int64_t        before = draft_->decode_calls();
    std::vector<int32_t> out    = draft_->propose(slot.id, slot.cache, std::min(slot.spec.n_cur, room));
    draft_decodes_ += draft_->decode_calls() - before;
    return out;
}

// The sampler samples position by position, exactly as without a draft; a draft token is kept
// while it equals what was sampled, and the cells after the first disagreement are dropped.
int32_t Engine::verify_draft(Slot & slot, int32_t i_batch) {
    const std::vector<int32_t> draft = std::move(slot.draft);
    slot.draft.clear();
    const size_t n_draft = draft.size();
    const size_t base    = slot.cache.size() - n_draft;  // cells up to and including last_token
    size_t       kept    = 0;
    for (size_t j = 0; j <= n_draft; ++j) {
        const int32_t tok = sample_slot(slot, i_batch + (int32_t) j);
        if (slot.state != Slot::State::Generate) break;  // finished (stop, length, EOG)
        if (j == n_draft || tok != draft[j]) break;
        ++kept;
    }
    llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, (llama_pos) (base + kept), -1);
    slot.cache.resize(base + kept);
    slot.spec.update((int32_t) n_draft, (int32_t) kept);
    draft_tokens_ += (int64_t) n_draft;
    draft_accepted_ += (int64_t) kept;
    return (int32_t) kept;
}

int32_t Engine::sample_slot(Slot & slot, int32_t i_batch) {
    const GenerateRequest & req = slot.job->req;
    const llama_token       tok = common_sampler_sample(slot.smpl, ctx_, i_batch);
    common_sampler_accept(slot.smpl, tok, true);
    const auto now = Clock::now();
    if (slot.state == Slot::State::Prefill) {
        slot.state                = Slot::State::Generate;
        slot.t_first              = now;
        slot.done.prompt_eval_ns  = ns_between(slot.t_start, now);
    }
    slot.t_used = now;
    slot.done.eval_count++;
    slot.generated.push_back(tok);

    if (req.logprobs) {
        const float * logits  = llama_get_logits_ith(ctx_, i_batch);
        const int32_t n_vocab = model_->info().n_vocab;
        float         max_l   = -INFINITY;
        for (int32_t i = 0; i < n_vocab; ++i) max_l = std::max(max_l, logits[i]);
        double sum = 0.0;
        for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp((double) logits[i] - max_l);
        const float   log_z = (float) (max_l + std::log(sum));
        TokenLogprob  lp;
        lp.token   = tok;
        lp.text    = model_->token_to_piece(tok, true);
        lp.logprob = logits[tok] - log_z;
        if (req.top_logprobs > 0) {
            std::vector<int32_t> ids(n_vocab);
            for (int32_t i = 0; i < n_vocab; ++i) ids[i] = i;
            const int32_t k = std::min(req.top_logprobs, n_vocab);
            std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                              [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
            for (int32_t j = 0; j < k; ++j) {
                lp.top.push_back({ids[j], model_->token_to_piece(ids[j], true), logits[ids[j]] - log_z});
            }
        }
        slot.pending_lp.push_back(std::move(lp));
    }

    if (model_->is_eog(tok) && !req.sampling.ignore_eos) {
        slot.generated.pop_back();
        finish(slot, "stop");
        return tok;
    }
    slot.last_token = tok;
    slot.pending += model_->token_to_piece(tok, false);
    slot.pending_tokens.push_back(tok);

    // stop strings: never emitted, matched across token boundaries
    for (const auto & stop : req.stop) {
        size_t pos = slot.pending.find(stop);
        if (pos != std::string::npos) {
            slot.pending.resize(pos);
            finish(slot, "stop");
            return tok;
        }
    }
    if (req.n_predict >= 0 && slot.done.eval_count >= req.n_predict) {
        finish(slot, "length");
        return tok;
    }
    emit(slot, false);
    return tok;
}

// Sends the decided part of the pending text: UTF-8 complete, no partial stop-string match.
void Engine::emit(Slot & slot, bool flush) {
    size_t n = slot.pending.size();
    if (!flush) {
        n = std::min(n, slot.pending.size() - partial_stop_len(slot.pending, slot.job->req.stop));
        n = std::min(n, utf8_complete_prefix(slot.pending.substr(0, n)));
    }
    if (n == 0 && !(flush && (!slot.pending_tokens.empty() || !slot.pending_lp.empty()))) return;
    StreamEvent ev;
    ev.text = slot.pending.substr(0, n);
    slot.pending.erase(0, n);
    if (slot.pending.empty() || flush) {
        ev.tokens.swap(slot.pending_tokens);
        ev.logprobs.swap(slot.pending_lp);
    }
    if (ev.text.empty() && ev.tokens.empty() && ev.logprobs.empty()) return;
    slot.job->ch->push(std::move(ev));
}

void Engine::finish(Slot & slot, const std::string & reason) {
    if (reason != "cancel") emit(slot, true);
    Completion c     = slot.done;
    c.done_reason    = reason;
    c.eval_ns        = slot.done.eval_count > 0 ? ns_between(slot.t_first, Clock::now()) : 0;
    if (slot.state == Slot::State::Prefill) c.prompt_eval_ns = ns_between(slot.t_start, Clock::now());
    c.n_cached   = (int32_t) slot.cache.size();
    c.next_pos   = (int32_t) slot.pos();
    c.kv_pos_max = (int32_t) llama_memory_seq_pos_max(llama_get_memory(ctx_), slot.id);
    for (int32_t t : slot.prompt) {
        if (t != MEDIA_TOKEN) c.context.push_back(t);  // images have no token ids
    }
    c.context.insert(c.context.end(), slot.generated.begin(), slot.generated.end());
    slot.job->ch->finish(std::move(c));
    slot.job.reset();
    if (slot.smpl) {
        common_sampler_free(slot.smpl);
        slot.smpl = nullptr;
    }
    slot.pending.clear();
    slot.pending_tokens.clear();
    slot.pending_lp.clear();
    slot.state    = Slot::State::Idle;
    slot.wait_for = nullptr;
    slot.t_used   = Clock::now();
    n_active_.fetch_sub(1);
}

std::string Engine::broken() {
    std::lock_guard<std::mutex> lock(mu_);
    return broken_;
}

bool Engine::rpc_lost() {
    if (model_->rpc_servers().empty() || rpc_failure_count() == rpc_epoch_) return false;
    std::string dead, all;  // name the workers that no longer accept connections
    for (const auto & ep : model_->rpc_servers()) {
        all += (all.empty() ? "" : ", ") + ep;
        if (!rpc_endpoint_accepts(ep, 500)) dead += (dead.empty() ? "" : ", ") + ep;
    }
    const std::string err = "an error was encountered while running the model: the connection to RPC worker " +
                            (dead.empty() ? "(one of " + all + ")" : dead) + " was lost (" + rpc_last_failure() +
                            "); the model will be reloaded on the next request";
    {
        std::lock_guard<std::mutex> lock(mu_);
        broken_      = err;
        stopping_    = true;
        stop_reason_ = err;
    }
    for (auto & sp : slots_) {
        if (sp->state != Slot::State::Idle) {
            sp->cache.clear();
            fail_slot(*sp, err);
        }
    }
    return true;
}

void Engine::fail_slot(Slot & slot, const std::string & err) {
    if (slot.job) slot.job->ch->fail(err);
    slot.job.reset();
    if (slot.smpl) {
        common_sampler_free(slot.smpl);
        slot.smpl = nullptr;
    }
    if (slot.state != Slot::State::Idle) n_active_.fetch_sub(1);
    slot.state    = Slot::State::Idle;
    slot.wait_for = nullptr;
}

// Vision: encode the image the slot's prefill has reached and decode it into its sequence (on
// its own: embeddings cannot share a token batch, and some projectors need non-causal attention).
// False when the slot failed.
bool Engine::step_media(Slot & slot) {
    auto it = slot.prompt_media.find(slot.n_prompt_done);
    if (it == slot.prompt_media.end() || !projector_) return true;
    MediaSpan &   span = it->second;
    int64_t       ns   = 0;
    const int32_t ret  = projector_->eval(ctx_, span, slot.pos(), slot.id, n_batch_, ns);
    if (ret != 0) {
        llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, -1, -1);
        slot.clear_cache();
        fail_slot(slot, "failed to encode an image (code " + std::to_string(ret) + ")");
        return false;
    }
    slot.cache.insert(slot.cache.end(), (size_t) span.n_tokens, MEDIA_TOKEN);
    slot.cache_media[slot.n_prompt_done] = MediaSpan{ span.id, span.n_tokens, span.n_pos, nullptr };
    slot.pos_delta += span.n_tokens - span.n_pos;
    slot.n_prompt_done += (size_t) span.n_tokens;
    slot.done.prompt_eval += span.n_tokens;
    slot.done.media_chunks++;
    slot.done.media_encode_ns += ns;
    span.chunk.reset();  // pixels are no longer needed
    decode_calls_++;
    tokens_decoded_ += span.n_tokens;
    return true;
}

void Engine::run_embed(EmbedJob & job) {
    try {
        const EmbedRequest & req    = *job.req;
        const bool           rank   = llama_pooling_type(ctx_) == LLAMA_POOLING_TYPE_RANK;
        const int32_t        n_embd = rank ? std::max(1, model_->n_cls_out()) : llama_model_n_embd_out(model_->raw());
        llama_memory_t       mem    = llama_get_memory(ctx_);
        std::vector<std::vector<float>> out;
        for (const auto & input : req.inputs) {
            std::vector<int32_t> toks = input;
            if ((int32_t) toks.size() > n_ctx_slot_) toks.resize(n_ctx_slot_);
            job.n_tokens->push_back((int32_t) toks.size());
            if (mem) llama_memory_clear(mem, true);
            common_batch & batch = *batch_;
            batch.clear();
            for (size_t i = 0; i < toks.size(); ++i) batch.add(toks[i], (llama_pos) i, 0, true);
            const bool    encoder_only = model_->info().has_encoder && !model_->info().has_decoder;
            const int32_t ret = llama_process(ctx_, encoder_only ? LLAMA_PROCESS_TYPE_ENCODE : LLAMA_PROCESS_TYPE_DECODE,
                                              batch.get());
            if (rpc_lost()) throw std::runtime_error(broken());
            if (ret != 0) throw std::runtime_error("embedding decode failed with code " + std::to_string(ret));
            const float * e = llama_get_embeddings_seq(ctx_, 0);
            if (e == nullptr) throw std::runtime_error("model produced no pooled embedding");
            std::vector<float> v(e, e + n_embd);
            if (req.normalize && !rank) {
                double norm = 0.0;
                for (float x : v) norm += (double) x * x;
                norm = std::sqrt(norm);
                if (norm > 0.0) for (float & x : v) x = (float) (x / norm);
            }
            out.push_back(std::move(v));
        }
        job.result.set_value(std::move(out));
    } catch (...) {
        job.result.set_exception(std::current_exception());
    }
}

}  // namespace a3s
