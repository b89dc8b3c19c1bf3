"""
A3S Power native core (llama.cpp)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['BusyError', 'Channel', 'ChatParser', 'ChatRender', 'Engine', 'EngineError', 'EngineParams', 'GenerateRequest', 'LLAMA_CPP_COMMIT', 'MediaPrompt', 'Model', 'ModelError', 'ModelInfo', 'ModelParams', 'Projector', 'ProjectorParams', 'RpcError', 'SamplingParams', 'drain_logs', 'engine_broken', 'engine_memory', 'json_schema_to_grammar', 'local_devices', 'ngram_lookup', 'quantize', 'quantize_types', 'rpc_failure_count', 'rpc_hello_request_size', 'rpc_last_failure', 'rpc_protocol_version', 'rpc_serve', 'set_log_echo', 'system_info', 'validate_gguf']
class EngineError(RuntimeError):
    pass
class BusyError(RuntimeError):
    pass
class ModelError(ValueError):
    pass
class ModelParams:
    cpu_repack: bool
    use_mlock: bool
    use_mmap: bool
    vocab_only: bool
    def __init__(self) -> None:
        ...
    @property
    def lora_paths(self) -> list[str]:
        ...
    @lora_paths.setter
    def lora_paths(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def main_gpu(self) -> int:
        ...
    @main_gpu.setter
    def main_gpu(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_gpu_layers(self) -> int:
        ...
    @n_gpu_layers.setter
    def n_gpu_layers(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def rpc_servers(self) -> list[str]:
        ...
    @rpc_servers.setter
    def rpc_servers(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def tensor_split(self) -> list[float]:
        ...
    @tensor_split.setter
    def tensor_split(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
class ModelInfo:
    @property
    def add_bos(self) -> bool:
        ...
    @property
    def add_eos(self) -> bool:
        ...
    @property
    def architecture(self) -> str:
        ...
    @property
    def bos_token(self) -> int:
        ...
    @property
    def chat_template(self) -> str:
        ...
    @property
    def context_length(self) -> int:
        ...
    @property
    def description(self) -> str:
        ...
    @property
    def embedding_length(self) -> int:
        ...
    @property
    def eog_tokens(self) -> list[int]:
        ...
    @property
    def eos_token(self) -> int:
        ...
    @property
    def file_type(self) -> str:
        ...
    @property
    def has_decoder(self) -> bool:
        ...
    @property
    def has_encoder(self) -> bool:
        ...
    @property
    def is_recurrent(self) -> bool:
        ...
    @property
    def metadata(self) -> dict[str, str]:
        ...
    @property
    def n_head(self) -> int:
        ...
    @property
    def n_head_kv(self) -> int:
        ...
    @property
    def n_layer(self) -> int:
        ...
    @property
    def n_vocab(self) -> int:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def parameter_count(self) -> int:
        ...
    @property
    def pooling_type(self) -> int:
        ...
    @property
    def size_bytes(self) -> int:
        ...
class ChatRender:
    @property
    def additional_stops(self) -> list[str]:
        ...
    @property
    def format(self) -> str:
        ...
    @property
    def generation_prompt(self) -> str:
        ...
    @property
    def grammar(self) -> str:
        ...
    @property
    def grammar_lazy(self) -> bool:
        ...
    @property
    def parser(self) -> str:
        ...
    @property
    def preserved_tokens(self) -> list[str]:
        ...
    @property
    def prompt(self) -> str:
        ...
    @property
    def supports_thinking(self) -> bool:
        ...
    @property
    def thinking_end_tags(self) -> list[str]:
        ...
    @property
    def thinking_start_tag(self) -> str:
        ...
    @property
    def trigger_patterns(self) -> list[str]:
        ...
    @property
    def trigger_words(self) -> list[str]:
        ...
class Model:
    @staticmethod
    def load(path: str, params: ModelParams = ...) -> Model:
        """
        Load a GGUF model; raises ModelError
        """
    def check_grammar(self, gbnf: str) -> None:
        ...
    def detokenize(self, tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], remove_special: bool = False, unparse_special: bool = False) -> str:
        ...
    def is_eog(self, token: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def render_chat(self, messages_json: str, tools_json: str = '', tool_choice: str = 'auto', json_schema: str = '', template_override: str = '', add_generation_prompt: bool = True, enable_thinking: bool = True, parallel_tool_calls: bool = False, kwargs: collections.abc.Mapping[str, str] = {}) -> ChatRender:
        """
        Render an OpenAI-shaped message list (JSON) with the model's chat template
        """
    def rerank_input(self, query: str, document: str) -> list[int]:
        ...
    def token_to_piece(self, token: typing.SupportsInt | typing.SupportsIndex, special: bool = False) -> bytes:
        ...
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        ...
    @property
    def info(self) -> ModelInfo:
        ...
    @property
    def n_cls_out(self) -> int:
        ...
    @property
    def n_lora(self) -> int:
        ...
    @property
    def path(self) -> str:
        ...
class ChatParser:
    def __init__(self, format: str, parser: str, generation_prompt: str = '', parse_reasoning: bool = True, parse_tool_calls: bool = True) -> None:
        """
        A parser for one rendered conversation's reply (from ChatRender's format/parser/generation_prompt)
        """
    def parse(self, text: str, is_partial: bool) -> tuple[str, str, list]:
        """
        (content, reasoning, tool_calls) of the text generated so far; tool_calls: [{name, arguments, id}]
        """
class SamplingParams:
    generation_prompt: str
    grammar: str
    grammar_from_template: bool
    grammar_lazy: bool
    ignore_eos: bool
    penalize_newline: bool
    def __init__(self) -> None:
        ...
    @property
    def frequency_penalty(self) -> float:
        ...
    @frequency_penalty.setter
    def frequency_penalty(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def logit_bias(self) -> list[tuple[int, float]]:
        ...
    @logit_bias.setter
    def logit_bias(self, arg0: collections.abc.Sequence[tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]]) -> None:
        ...
    @property
    def min_p(self) -> float:
        ...
    @min_p.setter
    def min_p(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def mirostat(self) -> int:
        ...
    @mirostat.setter
    def mirostat(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def mirostat_eta(self) -> float:
        ...
    @mirostat_eta.setter
    def mirostat_eta(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def mirostat_tau(self) -> float:
        ...
    @mirostat_tau.setter
    def mirostat_tau(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def presence_penalty(self) -> float:
        ...
    @presence_penalty.setter
    def presence_penalty(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def preserved_tokens(self) -> list[str]:
        ...
    @preserved_tokens.setter
    def preserved_tokens(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def repeat_last_n(self) -> int:
        ...
    @repeat_last_n.setter
    def repeat_last_n(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def repeat_penalty(self) -> float:
        ...
    @repeat_penalty.setter
    def repeat_penalty(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def temperature(self) -> float:
        ...
    @temperature.setter
    def temperature(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def top_k(self) -> int:
        ...
    @top_k.setter
    def top_k(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def top_p(self) -> float:
        ...
    @top_p.setter
    def top_p(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def trigger_patterns(self) -> list[str]:
        ...
    @trigger_patterns.setter
    def trigger_patterns(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def trigger_words(self) -> list[str]:
        ...
    @trigger_words.setter
    def trigger_words(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def typical_p(self) -> float:
        ...
    @typical_p.setter
    def typical_p(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class MediaPrompt:
    @property
    def n_media_tokens(self) -> int:
        ...
    @property
    def spans(self) -> list:
        """
        [(start, n_tokens, n_pos, id)] of the media chunks
        """
    @property
    def tokens(self) -> list[int]:
        ...
class GenerateRequest:
    cache_prompt: bool
    logprobs: bool
    media: MediaPrompt
    sampling: SamplingParams
    shift: bool
    truncate: bool
    def __init__(self) -> None:
        ...
    @property
    def draft_max(self) -> int:
        ...
    @draft_max.setter
    def draft_max(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def lora_scales(self) -> list[float]:
        ...
    @lora_scales.setter
    def lora_scales(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    @property
    def n_keep(self) -> int:
        ...
    @n_keep.setter
    def n_keep(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_predict(self) -> int:
        ...
    @n_predict.setter
    def n_predict(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def prompt(self) -> list[int]:
        ...
    @prompt.setter
    def prompt(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    @property
    def stop(self) -> list[str]:
        ...
    @stop.setter
    def stop(self, arg0: collections.abc.Sequence[str]) -> None:
        ...
    @property
    def top_logprobs(self) -> int:
        ...
    @top_logprobs.setter
    def top_logprobs(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class ProjectorParams:
    media_marker: str
    use_gpu: bool
    warmup: bool
    def __init__(self) -> None:
        ...
    @property
    def flash_attn(self) -> int:
        ...
    @flash_attn.setter
    def flash_attn(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_threads(self) -> int:
        ...
    @n_threads.setter
    def n_threads(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class Projector:
    @staticmethod
    def load(path: str, model: Model, params: ProjectorParams = ...) -> Projector:
        ...
    def tokenize(self, text: str, images: collections.abc.Sequence[tuple], add_special: bool = True, parse_special: bool = True, prefix: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = []) -> MediaPrompt:
        """
        Tokens with one media run per marker in `text`; images are (width, height, RGB bytes, id)
        """
    @property
    def audio(self) -> bool:
        ...
    @property
    def marker(self) -> str:
        ...
    @property
    def mrope(self) -> bool:
        ...
    @property
    def path(self) -> str:
        ...
    @property
    def vision(self) -> bool:
        ...
class EngineParams:
    cache_type_k: str
    cache_type_v: str
    embeddings: bool
    kv_unified: bool
    share_prefix: bool
    def __init__(self) -> None:
        ...
    @property
    def cache_ram_mib(self) -> int:
        ...
    @cache_ram_mib.setter
    def cache_ram_mib(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def draft_max(self) -> int:
        ...
    @draft_max.setter
    def draft_max(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def flash_attn(self) -> int:
        ...
    @flash_attn.setter
    def flash_attn(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def max_queue(self) -> int:
        ...
    @max_queue.setter
    def max_queue(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_batch(self) -> int:
        ...
    @n_batch.setter
    def n_batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_ctx(self) -> int:
        ...
    @n_ctx.setter
    def n_ctx(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_parallel(self) -> int:
        ...
    @n_parallel.setter
    def n_parallel(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_threads(self) -> int:
        ...
    @n_threads.setter
    def n_threads(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_threads_batch(self) -> int:
        ...
    @n_threads_batch.setter
    def n_threads_batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def n_ubatch(self) -> int:
        ...
    @n_ubatch.setter
    def n_ubatch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def pooling(self) -> int:
        ...
    @pooling.setter
    def pooling(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def share_min(self) -> int:
        ...
    @share_min.setter
    def share_min(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class Channel:
    def cancel(self) -> None:
        ...
    def drain(self) -> tuple[list, typing.Any]:
        """
        Non-blocking: ([(text, tokens, logprobs|None)], completion dict or None); raises EngineError
        """
    def fileno(self) -> int:
        ...
    def wait(self, timeout_ms: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class Engine:
    def __init__(self, model: Model, params: EngineParams = ..., projector: Projector | None = None, draft: Model | None = None) -> None:
        ...
    def embed(self, inputs: collections.abc.Sequence[collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]], normalize: bool = True, truncate: bool = True) -> tuple[numpy.typing.NDArray[numpy.float32], list[int]]:
        ...
    def shutdown(self, reason: str = 'model unloaded') -> None:
        ...
    def stats(self) -> dict:
        ...
    def submit(self, request: GenerateRequest) -> Channel:
        ...
    @property
    def has_draft_model(self) -> bool:
        ...
    @property
    def n_ctx(self) -> int:
        ...
class RpcError(RuntimeError):
    pass
def drain_logs() -> list[tuple[int, str]]:
    """
    Complete llama.cpp log lines so far as (level, text)
    """
def engine_broken(engine: Engine) -> str:
    """
    Why the engine stopped after losing an RPC worker ('' while it is healthy)
    """
def engine_memory(engine: Engine) -> list:
    """
    Bytes the model and its context hold on each buffer type / device
    """
def json_schema_to_grammar(schema_json: str) -> str:
    ...
def local_devices() -> list:
    ...
def ngram_lookup(context: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], n_draft: typing.SupportsInt | typing.SupportsIndex, ngram_min: typing.SupportsInt | typing.SupportsIndex = 3, ngram_max: typing.SupportsInt | typing.SupportsIndex = 6) -> list[int]:
    """
    The n-gram draft the engine would propose after `context` (prompt lookup)
    """
def quantize(src_path: str, dst_path: str, ftype: str, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Quantize an F16/BF16/F32 GGUF to `ftype` (e.g. q4_K_M)
    """
def quantize_types() -> list[str]:
    ...
def rpc_failure_count() -> int:
    """
    RPC connection failures since the process started
    """
def rpc_hello_request_size() -> int:
    ...
def rpc_last_failure() -> str:
    ...
def rpc_protocol_version() -> list[int]:
    """
    ggml RPC protocol (major, minor, patch) of this build
    """
def rpc_serve(host: str, port: typing.SupportsInt | typing.SupportsIndex, cache_dir: str = '', n_threads: typing.SupportsInt | typing.SupportsIndex = 0, devices: collections.abc.Sequence[str] = [], mem_bytes: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Serve this machine's devices over ggml's RPC protocol; blocks; raises RpcError
    """
def set_log_echo(on: bool) -> None:
    ...
def system_info() -> str:
    """
    llama.cpp system info string
    """
def validate_gguf(path: str) -> None:
    """
    Check a GGUF file's header and size; raises ModelError
    """
LLAMA_CPP_COMMIT: str = '0c1e57098bba43ac29e6e3b677cdceebdd22334f'
