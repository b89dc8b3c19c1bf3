#include "chat_parse.h"

#include <stdexcept>

namespace a3s {

static common_chat_format format_from_name(const std::string & name) {
    for (int i = 0; i < COMMON_CHAT_FORMAT_COUNT; ++i) {
        auto f = static_cast<common_chat_format>(i);
        if (name == common_chat_format_name(f)) {
            return f;
        }
    }
    throw std::invalid_argument("unknown chat format: " + name);
}

ChatParser::ChatParser(const std::string & format, const std::string & parser,
                       const std::string & generation_prompt, bool parse_reasoning, bool parse_tool_calls) {
    params_.format            = format.empty() ? COMMON_CHAT_FORMAT_CONTENT_ONLY : format_from_name(format);
    params_.generation_prompt = generation_prompt;
    params_.reasoning_format  = parse_reasoning ? COMMON_REASONING_FORMAT_AUTO : COMMON_REASONING_FORMAT_NONE;
    params_.parse_tool_calls  = parse_tool_calls;
    if (!parser.empty()) {
        try {
            params_.parser.load(parser);
        } catch (const std::exception & e) {
            throw std::invalid_argument(std::string("invalid chat parser: ") + e.what());
        }
    }
}

ParsedMessage ChatParser::parse(const std::string & text, bool is_partial) const {
    common_chat_msg msg;
    try {
        msg = common_chat_parse(text, is_partial, params_);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("failed to parse the model output: ") + e.what());
    }
    ParsedMessage out;
    out.content   = msg.content;
    out.reasoning = msg.reasoning_content;
    for (const auto & call : msg.tool_calls) {
        out.tool_calls.push_back({ call.name, call.arguments, call.id });
    }
    return out;
}

}  // namespace a3s
