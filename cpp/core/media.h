// Vision (and audio) input through llama.cpp's mtmd: a projector loaded beside a text model,
// prompts tokenized into text runs and media chunks, media chunks encoded and decoded into a
// slot's sequence on the engine's decode thread.
//
// A prompt with media is a flat token list where a media chunk occupies n_tokens entries of -1
// (LLAMA_TOKEN_NULL), plus MediaSpans: start index -> the chunk. Prefix reuse treats a media run
// as equal when id (SHA-256 of the image bytes) and n_tokens match.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model.h"

struct mtmd_context;
struct mtmd_input_chunk;
struct llama_context;

namespace a3s {

constexpr int32_t MEDIA_TOKEN = -1;  // LLAMA_TOKEN_NULL: a position held by a media chunk

struct ProjectorParams {
    int32_t     n_threads    = 0;     // 0: physical cores (as the model's context)
    bool        use_gpu      = true;  // follows the model's GPU offload
    int32_t     flash_attn   = -1;    // -1 auto, 0 off, 1 on (as the model's context)
    bool        warmup       = true;  // encode a dummy image at load (as llama-server)
    std::string media_marker;         // "" : mtmd's default; a random one keeps user text from faking media
};

// An owned mtmd chunk (image or audio), its id and sizes.
struct MediaChunk {
    mtmd_input_chunk * chunk = nullptr;
    ~MediaChunk();
};

struct MediaSpan {
    std::string                       id;
    int32_t                           n_tokens = 0;
    int32_t                           n_pos    = 0;  // positions it advances (< n_tokens for M-RoPE)
    std::shared_ptr<const MediaChunk> chunk;         // null once decoded into a cache
};
using MediaSpans = std::map<size_t, MediaSpan>;

// An RGB image decoded (and validated) by the caller; id = SHA-256 hex of the original bytes.
struct Image {
    uint32_t    nx = 0, ny = 0;
    std::string rgb;  // nx * ny * 3 bytes
    std::string id;
};

struct MediaPrompt {
    std::vector<int32_t> tokens;  // text tokens, MEDIA_TOKEN where media sits
    MediaSpans           spans;
    int32_t              n_media_tokens = 0;
};

class Projector {
  public:
    static std::shared_ptr<Projector> load(const std::string & path, std::shared_ptr<Model> model,
                                           const ProjectorParams & params);  // throws ModelError
    ~Projector();
    Projector(const Projector &) = delete;
    Projector & operator=(const Projector &) = delete;

    bool                vision() const;
    bool                audio() const;
    bool                mrope() const;
    const std::string & marker() const { return marker_; }
    const std::string & path() const { return path_; }

    // Request thread (thread-safe): `text` holds one marker per image, in order; `prefix` tokens
    // (e.g. Ollama's context) go first. Throws std::invalid_argument for a mismatch or bad image.
    std::shared_ptr<MediaPrompt> tokenize(const std::string & text, const std::vector<Image> & images,
                                          bool add_special, bool parse_special,
                                          const std::vector<int32_t> & prefix = {}) const;

    // Decode thread only: encode the span's chunk and decode its embeddings into `seq` from
    // position `n_past`. Returns 0 on success; `encode_ns` gets the encode + decode time.
    int32_t eval(llama_context * ctx, const MediaSpan & span, int32_t n_past, int32_t seq, int32_t n_batch,
                 int64_t & encode_ns);

  private:
    Projector() = default;
    std::string            path_;
    std::string            marker_;
    std::shared_ptr<Model> model_;
    mtmd_context *         ctx_ = nullptr;
};

// Longest common prefix of two token lists with media: a media run matches only as a whole with
// the same id and n_tokens, so the result never ends inside a media run.
size_t media_common_prefix(const std::vector<int32_t> & a, const MediaSpans & ma, const std::vector<int32_t> & b,
                           const MediaSpans & mb);
// The start of the media run containing index `i` (or `i` when it is not inside one).
size_t media_run_start(const MediaSpans & spans, size_t i);
// Drops runs at or past `n`; returns the position offset (sum of n_tokens - n_pos) of those kept.
int32_t media_truncate(MediaSpans & spans, size_t n);

}  // namespace a3s
