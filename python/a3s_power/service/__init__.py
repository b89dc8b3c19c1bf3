"""The family-neutral service layer under every API family and the CLI.

- `state`: `ServerState` (settings, store, scheduler, metrics) and its typed accessor;
- `job`: `ChatJob`, what any surface asks for, in one typed shape;
- `models`: a model name → a stored model, its capabilities, its load spec; runners held/released;
- `chat`: the one pipeline (`run_chat`, `render_only`, `collect_chat`);
- `embedding`: pooled vectors and reranking on a model loaded for embeddings.
"""
