"""LLM post-training stages on transformers + TRL (the optional ``llm`` extra).

Every module here imports torch/transformers/trl at its top, and is itself
imported only lazily by `blut.payload.stages` when its stage runs, so the base
install (and ``blut --help``) never loads them. Each stage calls
`common.prepare` first: offline hub settings, a stage-local HF cache, and a
clear error when the extra is missing.
"""
