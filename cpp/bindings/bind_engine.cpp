#include <pybind11/numpy.h>

#include <optional>

#include "common.h"
#include "engine.h"
#include "media.h"

namespace {

py::dict completion_dict(const a3s::Completion & c) {
    py::dict d;
    d["done_reason"]          = c.done_reason;
    d["prompt_tokens"]        = c.prompt_tokens;
    d["prompt_eval_count"]    = c.prompt_eval;
    d["cached_tokens"]        = c.cached_tokens;
    d["truncated"]            = c.truncated;
    d["context_shifts"]       = c.context_shifts;
    d["eval_count"]           = c.eval_count;
    d["prompt_eval_duration"] = c.prompt_eval_ns;
    d["eval_duration"]        = c.eval_ns;
    d["queue_duration"]       = c.queue_ns;
    d["slot"]                 = c.slot;
    d["media_tokens"]         = c.media_tokens;
    d["media_chunks"]         = c.media_chunks;
    d["media_encode_duration"] = c.media_encode_ns;
    d["n_cached"]             = c.n_cached;
    d["next_pos"]             = c.next_pos;
    d["kv_pos_max"]           = c.kv_pos_max;
    d["context"]              = c.context;
    return d;
}

py::list logprobs_list(const std::vector<a3s::TokenLogprob> & lps) {
    py::list out;
    for (const auto & lp : lps) {
        py::list top;
        for (const auto & t : lp.top) {
            top.append(py::make_tuple(t.token, py::bytes(t.text), t.logprob));
        }
        out.append(py::make_tuple(lp.token, py::bytes(lp.text), lp.logprob, top));
    }
    return out;
}

}  // namespace

void bind_engine(py::module_ & m) {
    m.def("ngram_lookup", &a3s::ngram_lookup, py::arg("context"), py::arg("n_draft"), py::arg("ngram_min") = 3,
          py::arg("ngram_max") = 6, "The n-gram draft the engine would propose after `context` (prompt lookup)");
    using namespace a3s;
    py::class_<SamplingParams>(m, "SamplingParams")
        .def(py::init<>())
        .def_readwrite("temperature", &SamplingParams::temperature)
        .def_readwrite("top_k", &SamplingParams::top_k)
        .def_readwrite("top_p", &SamplingParams::top_p)
        .def_readwrite("min_p", &SamplingParams::min_p)
        .def_readwrite("typical_p", &SamplingParams::typical_p)
        .def_readwrite("repeat_penalty", &SamplingParams::repeat_penalty)
        .def_readwrite("repeat_last_n", &SamplingParams::repeat_last_n)
        .def_readwrite("presence_penalty", &SamplingParams::presence_penalty)
        .def_readwrite("frequency_penalty", &SamplingParams::frequency_penalty)
        .def_readwrite("penalize_newline", &SamplingParams::penalize_newline)
        .def_readwrite("mirostat", &SamplingParams::mirostat)
        .def_readwrite("mirostat_tau", &SamplingParams::mirostat_tau)
        .def_readwrite("mirostat_eta", &SamplingParams::mirostat_eta)
        .def_readwrite("seed", &SamplingParams::seed)
        .def_readwrite("ignore_eos", &SamplingParams::ignore_eos)
        .def_readwrite("logit_bias", &SamplingParams::logit_bias)
        .def_readwrite("grammar", &SamplingParams::grammar)
        .def_readwrite("grammar_lazy", &SamplingParams::grammar_lazy)
        .def_readwrite("trigger_words", &SamplingParams::trigger_words)
        .def_readwrite("trigger_patterns", &SamplingParams::trigger_patterns)
        .def_readwrite("preserved_tokens", &SamplingParams::preserved_tokens)
        .def_readwrite("generation_prompt", &SamplingParams::generation_prompt)
        .def_readwrite("grammar_from_template", &SamplingParams::grammar_from_template);

    py::class_<MediaPrompt, std::shared_ptr<MediaPrompt>>(m, "MediaPrompt")
        .def_readonly("tokens", &MediaPrompt::tokens)
        .def_readonly("n_media_tokens", &MediaPrompt::n_media_tokens)
        .def_property_readonly("spans", [](const MediaPrompt & mp) {
            py::list out;
            for (const auto & kv : mp.spans) out.append(py::make_tuple(kv.first, kv.second.n_tokens, kv.second.n_pos, kv.second.id));
            return out;
        }, "[(start, n_tokens, n_pos, id)] of the media chunks");

    py::class_<GenerateRequest>(m, "GenerateRequest")
        .def(py::init<>())
        .def_readwrite("prompt", &GenerateRequest::prompt)
        .def_readwrite("sampling", &GenerateRequest::sampling)
        .def_readwrite("n_predict", &GenerateRequest::n_predict)
        .def_readwrite("n_keep", &GenerateRequest::n_keep)
        .def_readwrite("truncate", &GenerateRequest::truncate)
        .def_readwrite("shift", &GenerateRequest::shift)
        .def_readwrite("cache_prompt", &GenerateRequest::cache_prompt)
        .def_readwrite("stop", &GenerateRequest::stop)
        .def_readwrite("logprobs", &GenerateRequest::logprobs)
        .def_readwrite("top_logprobs", &GenerateRequest::top_logprobs)
        .def_readwrite("lora_scales", &GenerateRequest::lora_scales)
        .def_readwrite("draft_max", &GenerateRequest::draft_max)
        .def_property(
            "media", [](const GenerateRequest & r) { return std::const_pointer_cast<MediaPrompt>(r.media); },
            [](GenerateRequest & r, std::shared_ptr<MediaPrompt> m) { r.media = std::move(m); });

    py::class_<ProjectorParams>(m, "ProjectorParams")
        .def(py::init<>())
        .def_readwrite("n_threads", &ProjectorParams::n_threads)
        .def_readwrite("use_gpu", &ProjectorParams::use_gpu)
        .def_readwrite("flash_attn", &ProjectorParams::flash_attn)
        .def_readwrite("warmup", &ProjectorParams::warmup)
        .def_readwrite("media_marker", &ProjectorParams::media_marker);

    py::class_<Projector, std::shared_ptr<Projector>>(m, "Projector")
        .def_static("load", &Projector::load, py::arg("path"), py::arg("model"), py::arg("params") = ProjectorParams(),
                    py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("vision", &Projector::vision)
        .def_property_readonly("audio", &Projector::audio)
        .def_property_readonly("mrope", &Projector::mrope)
        .def_property_readonly("marker", &Projector::marker)
        .def_property_readonly("path", &Projector::path)
        .def("tokenize",
             [](const Projector & self, const std::string & text, const std::vector<py::tuple> & images,
                bool add_special, bool parse_special, const std::vector<int32_t> & prefix) {
                 std::vector<Image> ims;
                 for (const auto & t : images) {
                     if (t.size() != 4) throw std::invalid_argument("an image is (width, height, rgb bytes, id)");
                     Image im;
                     im.nx  = t[0].cast<uint32_t>();
                     im.ny  = t[1].cast<uint32_t>();
                     im.rgb = t[2].cast<std::string>();
                     im.id  = t[3].cast<std::string>();
                     ims.push_back(std::move(im));
                 }
                 py::gil_scoped_release nogil;
                 return self.tokenize(text, ims, add_special, parse_special, prefix);
             },
             py::arg("text"), py::arg("images"), py::arg("add_special") = true, py::arg("parse_special") = true,
             py::arg("prefix") = std::vector<int32_t>(),
             "Tokens with one media run per marker in `text`; images are (width, height, RGB bytes, id)");

    py::class_<EngineParams>(m, "EngineParams")
        .def(py::init<>())
        .def_readwrite("n_ctx", &EngineParams::n_ctx)
        .def_readwrite("n_parallel", &EngineParams::n_parallel)
        .def_readwrite("n_batch", &EngineParams::n_batch)
        .def_readwrite("n_ubatch", &EngineParams::n_ubatch)
        .def_readwrite("n_threads", &EngineParams::n_threads)
        .def_readwrite("n_threads_batch", &EngineParams::n_threads_batch)
        .def_readwrite("max_queue", &EngineParams::max_queue)
        .def_readwrite("kv_unified", &EngineParams::kv_unified)
        .def_readwrite("flash_attn", &EngineParams::flash_attn)
        .def_readwrite("cache_type_k", &EngineParams::cache_type_k)
        .def_readwrite("cache_type_v", &EngineParams::cache_type_v)
        .def_readwrite("embeddings", &EngineParams::embeddings)
        .def_readwrite("pooling", &EngineParams::pooling)
        .def_readwrite("share_prefix", &EngineParams::share_prefix)
        .def_readwrite("share_min", &EngineParams::share_min)
        .def_readwrite("cache_ram_mib", &EngineParams::cache_ram_mib)
        .def_readwrite("draft_max", &EngineParams::draft_max);

    py::class_<Channel, std::shared_ptr<Channel>>(m, "Channel")
        .def("fileno", &Channel::fileno)
        .def("cancel", &Channel::cancel)
        .def("wait", &Channel::wait, py::arg("timeout_ms"), py::call_guard<py::gil_scoped_release>())
        .def("drain",
             [](Channel & self) {
                 std::vector<StreamEvent> events;
                 bool                     done = false;
                 Completion               completion;
                 std::string              error;
                 self.drain(events, done, completion, error);
                 py::list out;
                 for (const auto & ev : events) {
                     py::object lps = ev.logprobs.empty() ? py::object(py::none()) : logprobs_list(ev.logprobs);
                     // text is held back until UTF-8 complete; a final flush may still end mid-character
                     py::str text = py::reinterpret_steal<py::str>(
                         PyUnicode_DecodeUTF8(ev.text.data(), (Py_ssize_t) ev.text.size(), "replace"));
                     out.append(py::make_tuple(text, ev.tokens, lps));
                 }
                 if (done && !error.empty()) {
                     throw std::runtime_error(error);
                 }
                 py::object final = done ? py::object(completion_dict(completion)) : py::object(py::none());
                 return py::make_tuple(out, final);
             },
             "Non-blocking: ([(text, tokens, logprobs|None)], completion dict or None); raises EngineError");

    py::class_<Engine, std::shared_ptr<Engine>>(m, "Engine")
        .def(py::init([](std::shared_ptr<Model> model, const EngineParams & p,
                         std::optional<std::shared_ptr<Projector>> projector,
                         std::optional<std::shared_ptr<Model>> draft) {
                 py::gil_scoped_release nogil;
                 return std::make_shared<Engine>(std::move(model), p, projector ? *projector : nullptr,
                                                 draft ? *draft : nullptr);
             }),
             py::arg("model"), py::arg("params") = EngineParams(), py::arg("projector") = py::none(),
             py::arg("draft") = py::none())
        .def_property_readonly("has_draft_model", &Engine::has_draft_model)
        .def("submit", &Engine::submit, py::arg("request"), py::call_guard<py::gil_scoped_release>())
        .def("embed",
             [](Engine & self, const std::vector<std::vector<int32_t>> & inputs, bool normalize, bool truncate) {
                 EmbedRequest req;
                 req.inputs    = inputs;
                 req.normalize = normalize;
                 req.truncate  = truncate;
                 std::vector<int32_t>            counts;
                 std::vector<std::vector<float>> vecs;
                 {
                     py::gil_scoped_release nogil;
                     vecs = self.embed(req, counts);
                 }
                 const size_t       dim = vecs.empty() ? 0 : vecs[0].size();
                 py::array_t<float> arr({vecs.size(), dim});
                 auto               buf = arr.mutable_unchecked<2>();
                 for (size_t i = 0; i < vecs.size(); ++i)
                     for (size_t j = 0; j < dim; ++j) buf(i, j) = vecs[i][j];
                 return py::make_tuple(arr, counts);
             },
             py::arg("inputs"), py::arg("normalize") = true, py::arg("truncate") = true)
        .def("shutdown", &Engine::shutdown, py::arg("reason") = "model unloaded",
             py::call_guard<py::gil_scoped_release>())
        .def("stats",
             [](Engine & self) {
                 EngineStats s = self.stats();
                 py::dict    d;
                 d["n_slots"]        = s.n_slots;
                 d["n_active"]       = s.n_active;
                 d["n_queued"]       = s.n_queued;
                 d["n_ctx"]          = s.n_ctx;
                 d["n_batch"]        = s.n_batch;
                 d["n_ubatch"]       = s.n_ubatch;
                 d["pooling"]        = s.pooling;
                 d["decode_calls"]   = s.decode_calls;
                 d["tokens_decoded"] = s.tokens_decoded;
                 d["prompt_evaluated"] = s.prompt_evaluated;
                 d["prompt_shared"]    = s.prompt_shared;
                 d["prompt_restored"]  = s.prompt_restored;
                 d["prompt_waits"]     = s.prompt_waits;
                 d["draft_tokens"]     = s.draft_tokens;
                 d["draft_accepted"]   = s.draft_accepted;
                 d["draft_decodes"]    = s.draft_decodes;
                 py::dict c;
                 c["hits"]            = s.cache.hits;
                 c["misses"]          = s.cache.misses;
                 c["saves"]           = s.cache.saves;
                 c["evictions"]       = s.cache.evictions;
                 c["bytes"]           = s.cache.bytes;
                 c["entries"]         = s.cache.entries;
                 c["limit_bytes"]     = s.cache.limit_bytes;
                 c["tokens_restored"] = s.cache.tokens_restored;
                 d["prompt_cache"]     = c;
                 return d;
             })
        .def_property_readonly("n_ctx", &Engine::n_ctx_slot);
}
