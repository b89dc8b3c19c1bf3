"""Jinja chat templates for GGUFs that carry none, chosen by architecture.

llama.cpp falls back to ChatML for a template-less model, which is wrong for families trained
on another format (the bundled gemma3:270m GGUF has no `tokenizer.chat_template`).
"""

from __future__ import annotations

GEMMA = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

BY_ARCHITECTURE = {"gemma": GEMMA, "gemma2": GEMMA, "gemma3": GEMMA, "gemma3n": GEMMA}


def fallback_template(architecture: str, embedded_template: str) -> str:
    """The template to force for this model, or "" to use the model's own (or ChatML)."""
    if embedded_template:
        return ""
    return BY_ARCHITECTURE.get(architecture, "")
