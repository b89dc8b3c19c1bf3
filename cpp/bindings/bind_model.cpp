#include "common.h"
#include "chat_parse.h"
#include "model.h"
#include "sampler.h"

void bind_model(py::module_ & m) {
    using namespace a3s;
    py::class_<ModelParams>(m, "ModelParams")
        .def(py::init<>())
        .def_readwrite("n_gpu_layers", &ModelParams::n_gpu_layers)
        .def_readwrite("main_gpu", &ModelParams::main_gpu)
        .def_readwrite("use_mmap", &ModelParams::use_mmap)
        .def_readwrite("use_mlock", &ModelParams::use_mlock)
        .def_readwrite("vocab_only", &ModelParams::vocab_only)
        .def_readwrite("cpu_repack", &ModelParams::cpu_repack)
        .def_readwrite("lora_paths", &ModelParams::lora_paths)
        .def_readwrite("rpc_servers", &ModelParams::rpc_servers)
        .def_readwrite("tensor_split", &ModelParams::tensor_split);

    py::class_<ModelInfo>(m, "ModelInfo")
        .def_readonly("architecture", &ModelInfo::architecture)
        .def_readonly("name", &ModelInfo::name)
        .def_readonly("description", &ModelInfo::description)
        .def_readonly("file_type", &ModelInfo::file_type)
        .def_readonly("parameter_count", &ModelInfo::parameter_count)
        .def_readonly("size_bytes", &ModelInfo::size_bytes)
        .def_readonly("context_length", &ModelInfo::context_length)
        .def_readonly("embedding_length", &ModelInfo::embedding_length)
        .def_readonly("n_layer", &ModelInfo::n_layer)
        .def_readonly("n_head", &ModelInfo::n_head)
        .def_readonly("n_head_kv", &ModelInfo::n_head_kv)
        .def_readonly("n_vocab", &ModelInfo::n_vocab)
        .def_readonly("bos_token", &ModelInfo::bos_token)
        .def_readonly("eos_token", &ModelInfo::eos_token)
        .def_readonly("eog_tokens", &ModelInfo::eog_tokens)
        .def_readonly("add_bos", &ModelInfo::add_bos)
        .def_readonly("add_eos", &ModelInfo::add_eos)
        .def_readonly("has_encoder", &ModelInfo::has_encoder)
        .def_readonly("has_decoder", &ModelInfo::has_decoder)
        .def_readonly("is_recurrent", &ModelInfo::is_recurrent)
        .def_readonly("pooling_type", &ModelInfo::pooling_type)
        .def_readonly("chat_template", &ModelInfo::chat_template)
        .def_readonly("metadata", &ModelInfo::metadata);

    py::class_<ChatRender>(m, "ChatRender")
        .def_readonly("prompt", &ChatRender::prompt)
        .def_readonly("format", &ChatRender::format)
        .def_readonly("grammar", &ChatRender::grammar)
        .def_readonly("grammar_lazy", &ChatRender::grammar_lazy)
        .def_readonly("trigger_words", &ChatRender::trigger_words)
        .def_readonly("trigger_patterns", &ChatRender::trigger_patterns)
        .def_readonly("preserved_tokens", &ChatRender::preserved_tokens)
        .def_readonly("additional_stops", &ChatRender::additional_stops)
        .def_readonly("generation_prompt", &ChatRender::generation_prompt)
        .def_readonly("parser", &ChatRender::parser)
        .def_readonly("supports_thinking", &ChatRender::supports_thinking)
        .def_readonly("thinking_start_tag", &ChatRender::thinking_start_tag)
        .def_readonly("thinking_end_tags", &ChatRender::thinking_end_tags);

    py::class_<Model, std::shared_ptr<Model>>(m, "Model")
        .def_static("load", &Model::load, py::arg("path"), py::arg("params") = ModelParams(),
                    py::call_guard<py::gil_scoped_release>(), "Load a GGUF model; raises ModelError")
        .def_property_readonly("info", &Model::info, py::return_value_policy::reference_internal)
        .def_property_readonly("path", &Model::path)
        .def_property_readonly("n_lora", &Model::n_lora)
        .def("tokenize", &Model::tokenize, py::arg("text"), py::arg("add_special") = true,
             py::arg("parse_special") = false, py::call_guard<py::gil_scoped_release>())
        .def("detokenize", &Model::detokenize, py::arg("tokens"), py::arg("remove_special") = false,
             py::arg("unparse_special") = false, py::call_guard<py::gil_scoped_release>())
        .def("token_to_piece", [](const Model & self, int32_t token, bool special) {
                 return py::bytes(self.token_to_piece(token, special));
             }, py::arg("token"), py::arg("special") = false)
        .def("is_eog", &Model::is_eog, py::arg("token"))
        .def("rerank_input", &Model::rerank_input, py::arg("query"), py::arg("document"),
             py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("n_cls_out", &Model::n_cls_out)
        .def("render_chat",
             [](const Model & self, const std::string & messages_json, const std::string & tools_json,
                const std::string & tool_choice, const std::string & json_schema,
                const std::string & template_override, bool add_generation_prompt, bool enable_thinking,
                bool parallel_tool_calls, const std::map<std::string, std::string> & kwargs) {
                 ChatRenderOptions o;
                 o.messages_json         = messages_json;
                 o.tools_json            = tools_json;
                 o.tool_choice           = tool_choice;
                 o.json_schema           = json_schema;
                 o.template_override     = template_override;
                 o.add_generation_prompt = add_generation_prompt;
                 o.enable_thinking       = enable_thinking;
                 o.parallel_tool_calls   = parallel_tool_calls;
                 o.kwargs                = kwargs;
                 py::gil_scoped_release nogil;
                 return self.render_chat(o);
             },
             py::arg("messages_json"), py::arg("tools_json") = "", py::arg("tool_choice") = "auto",
             py::arg("json_schema") = "", py::arg("template_override") = "", py::arg("add_generation_prompt") = true,
             py::arg("enable_thinking") = true, py::arg("parallel_tool_calls") = false,
             py::arg("kwargs") = std::map<std::string, std::string>(),
             "Render an OpenAI-shaped message list (JSON) with the model's chat template")
        .def("check_grammar", [](const Model & self, const std::string & g) { check_grammar(self, g); },
             py::arg("gbnf"), py::call_guard<py::gil_scoped_release>());

    // superlinear in a schema's optional properties: seconds for a valid schema, so without the GIL
    m.def("json_schema_to_grammar", &json_schema_to_gbnf, py::arg("schema_json"),
          py::call_guard<py::gil_scoped_release>());

    py::class_<ChatParser>(m, "ChatParser")
        .def(py::init<const std::string &, const std::string &, const std::string &, bool, bool>(),
             py::arg("format"), py::arg("parser"), py::arg("generation_prompt") = "",
             py::arg("parse_reasoning") = true, py::arg("parse_tool_calls") = true,
             "A parser for one rendered conversation's reply (from ChatRender's format/parser/generation_prompt)")
        .def(
            "parse",
            [](const ChatParser & self, const std::string & text, bool is_partial) {
                ParsedMessage msg;
                {
                    py::gil_scoped_release nogil;
                    msg = self.parse(text, is_partial);
                }
                py::list calls;
                for (const auto & c : msg.tool_calls) {
                    py::dict d;
                    d["name"]      = c.name;
                    d["arguments"] = c.arguments;
                    d["id"]        = c.id;
                    calls.append(d);
                }
                return py::make_tuple(msg.content, msg.reasoning, calls);
            },
            py::arg("text"), py::arg("is_partial"),
            "(content, reasoning, tool_calls) of the text generated so far; tool_calls: [{name, arguments, id}]");
}
