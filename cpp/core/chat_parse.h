// Parsing a model's generated text back into a chat message (content, reasoning, tool calls)
// with llama.cpp's chat parsers: the PEG parser that common_chat_templates_apply generated for
// the rendered conversation (autoparser or a hand-written family parser).
#pragma once

#include <string>
#include <vector>

#include "chat.h"

namespace a3s {

struct ParsedToolCall {
    std::string name;
    std::string arguments;  // JSON text (possibly partial while streaming)
    std::string id;
};

struct ParsedMessage {
    std::string                 content;
    std::string                 reasoning;
    std::vector<ParsedToolCall> tool_calls;
};

class ChatParser {
  public:
    // format: the name ChatRender::format carries; parser: ChatRender::parser (serialized PEG
    // arena, "" = content only); generation_prompt: ChatRender::generation_prompt.
    ChatParser(const std::string & format, const std::string & parser, const std::string & generation_prompt,
               bool parse_reasoning, bool parse_tool_calls);

    // The message in `text` (everything generated so far). is_partial: more text may follow, so
    // incomplete markup is tolerated. Throws std::invalid_argument when a final text does not parse.
    ParsedMessage parse(const std::string & text, bool is_partial) const;

  private:
    common_chat_parser_params params_;
};

}  // namespace a3s
