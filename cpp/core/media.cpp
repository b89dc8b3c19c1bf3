#include "media.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

namespace a3s {

namespace {

struct ChunksDeleter {
    void operator()(mtmd_input_chunks * c) const { mtmd_input_chunks_free(c); }
};
struct BitmapDeleter {
    void operator()(mtmd_bitmap * b) const { mtmd_bitmap_free(b); }
};

}  // namespace

MediaChunk::~MediaChunk() {
    if (chunk) mtmd_input_chunk_free(chunk);
}

std::shared_ptr<Projector> Projector::load(const std::string & path, std::shared_ptr<Model> model,
                                           const ProjectorParams & params) {
    validate_gguf(path);  // header-level check first: clip's loader asserts on some broken files
    mtmd_context_params mp = mtmd_context_params_default();
    const int32_t max_threads = 2 * (int32_t) std::max(1u, std::thread::hardware_concurrency());
    mp.n_threads     = std::min(params.n_threads > 0 ? params.n_threads : common_cpu_get_num_math(), max_threads);
    mp.use_gpu       = params.use_gpu;
    mp.print_timings = false;
    mp.warmup        = params.warmup;
    mp.flash_attn_type = params.flash_attn < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO
                         : params.flash_attn == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                  : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    std::shared_ptr<Projector> p(new Projector());
    p->path_   = path;
    p->marker_ = params.media_marker.empty() ? std::string(mtmd_default_marker()) : params.media_marker;
    mp.media_marker = p->marker_.c_str();
    try {
        p->ctx_ = mtmd_init_from_file(path.c_str(), model->raw(), mp);
    } catch (const std::exception & e) {
        throw ModelError(std::string("failed to load the projector ") + path + ": " + e.what());
    }
    if (p->ctx_ == nullptr) {
        throw ModelError("failed to load the projector " + path +
                         " (not an mmproj GGUF, or it does not match the model's embedding size)");
    }
    if (!mtmd_support_vision(p->ctx_) && !mtmd_support_audio(p->ctx_)) {
        throw ModelError("the projector " + path + " supports neither vision nor audio");
    }
    p->model_ = std::move(model);
    return p;
}

Projector::~Projector() {
    if (ctx_) mtmd_free(ctx_);
}

bool Projector::vision() const { return mtmd_support_vision(ctx_); }
bool Projector::audio() const { return mtmd_support_audio(ctx_); }
bool Projector::mrope() const { return mtmd_decode_use_mrope(ctx_); }

std::shared_ptr<MediaPrompt> Projector::tokenize(const std::string & text, const std::vector<Image> & images,
                                                 bool add_special, bool parse_special,
                                                 const std::vector<int32_t> & prefix) const {
    if (!vision() && !images.empty()) throw std::invalid_argument("this projector does not take images");
    std::vector<std::unique_ptr<mtmd_bitmap, BitmapDeleter>> owned;
    std::vector<const mtmd_bitmap *>                         bitmaps;
    for (size_t i = 0; i < images.size(); ++i) {
        const Image & im = images[i];
        if (im.nx == 0 || im.ny == 0 || im.rgb.size() != (size_t) im.nx * im.ny * 3) {
            throw std::invalid_argument("image " + std::to_string(i + 1) + ": pixel buffer does not match its size");
        }
        mtmd_bitmap * bm = mtmd_bitmap_init(im.nx, im.ny, reinterpret_cast<const unsigned char *>(im.rgb.data()));
        if (bm == nullptr) throw std::invalid_argument("image " + std::to_string(i + 1) + ": cannot be used");
        if (!im.id.empty()) mtmd_bitmap_set_id(bm, im.id.c_str());
        owned.emplace_back(bm);
        bitmaps.push_back(bm);
    }
    size_t markers = 0;
    for (size_t pos = text.find(marker_); pos != std::string::npos; pos = text.find(marker_, pos + marker_.size())) {
        ++markers;
    }
    if (markers != images.size()) {
        throw std::invalid_argument("the prompt places " + std::to_string(markers) + " images but " +
                                    std::to_string(images.size()) + " were given");
    }
    std::unique_ptr<mtmd_input_chunks, ChunksDeleter> chunks(mtmd_input_chunks_init());
    mtmd_input_text in{ text.c_str(), text.size(), add_special, parse_special };
    const int32_t   ret = mtmd_tokenize(ctx_, chunks.get(), &in, bitmaps.data(), bitmaps.size());
    if (ret == 1) throw std::invalid_argument("the number of images does not match the media markers");
    if (ret != 0) throw std::invalid_argument("the image could not be preprocessed for this projector");

    auto out    = std::make_shared<MediaPrompt>();
    out->tokens = prefix;
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i) {
        const mtmd_input_chunk * ch = mtmd_input_chunks_get(chunks.get(), i);
        if (mtmd_input_chunk_get_type(ch) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t              n   = 0;
            const llama_token * tok = mtmd_input_chunk_get_tokens_text(ch, &n);
            out->tokens.insert(out->tokens.end(), tok, tok + n);
            continue;
        }
        auto owned_chunk   = std::make_shared<MediaChunk>();
        owned_chunk->chunk = mtmd_input_chunk_copy(ch);
        MediaSpan span;
        span.id       = mtmd_input_chunk_get_id(ch) ? mtmd_input_chunk_get_id(ch) : "";
        span.n_tokens = (int32_t) mtmd_input_chunk_get_n_tokens(ch);
        span.n_pos    = (int32_t) mtmd_input_chunk_get_n_pos(ch);
        span.chunk    = std::move(owned_chunk);
        if (span.n_tokens <= 0) continue;
        out->spans[out->tokens.size()] = span;
        out->tokens.insert(out->tokens.end(), (size_t) span.n_tokens, MEDIA_TOKEN);
        out->n_media_tokens += span.n_tokens;
    }
    return out;
}

int32_t Projector::eval(llama_context * ctx, const MediaSpan & span, int32_t n_past, int32_t seq, int32_t n_batch,
                        int64_t & encode_ns) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!span.chunk || !span.chunk->chunk) return -1;
    int32_t ret = mtmd_encode_chunk(ctx_, span.chunk->chunk);
    if (ret != 0) return ret;
    float *   embd     = mtmd_get_output_embd(ctx_);
    llama_pos new_past = n_past;
    ret = mtmd_helper_decode_image_chunk(ctx_, ctx, span.chunk->chunk, embd, n_past, seq, n_batch, &new_past,
                                         nullptr, nullptr);
    encode_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    return ret;
}

size_t media_common_prefix(const std::vector<int32_t> & a, const MediaSpans & ma, const std::vector<int32_t> & b,
                           const MediaSpans & mb) {
    size_t i = 0;
    while (i < a.size() && i < b.size()) {
        if (a[i] != MEDIA_TOKEN || b[i] != MEDIA_TOKEN) {
            if (a[i] != b[i]) break;
            ++i;
            continue;
        }
        auto sa = ma.find(i);
        auto sb = mb.find(i);
        if (sa == ma.end() || sb == mb.end() || sa->second.id.empty() || sa->second.id != sb->second.id ||
            sa->second.n_tokens != sb->second.n_tokens || i + sa->second.n_tokens > a.size() ||
            i + sb->second.n_tokens > b.size()) {
            break;
        }
        i += sa->second.n_tokens;
    }
    return std::min(media_run_start(ma, i), media_run_start(mb, i));
}

size_t media_run_start(const MediaSpans & spans, size_t i) {
    auto it = spans.upper_bound(i);
    if (it == spans.begin()) return i;
    --it;
    return (it->first < i && i < it->first + (size_t) it->second.n_tokens) ? it->first : i;
}

int32_t media_truncate(MediaSpans & spans, size_t n) {
    spans.erase(spans.lower_bound(n), spans.end());
    int32_t delta = 0;
    for (const auto & kv : spans) delta += kv.second.n_tokens - kv.second.n_pos;
    return delta;
}

}  // namespace a3s
