"""RoFormer models (BS-RoFormer, Mel-Band RoFormer) in the local engine.

The architectures come from the inference packages ``bs-roformer-infer`` and
``melband-roformer-infer`` (docs/local-inference.md, "RoFormer models", says
why those); this package finds and checks the published files
(``files.py``, ``download.py``), builds the network through the package's own
``get_model_from_config`` (``loader.py``) and streams a track through it with
the package's chunking arithmetic (``stream.py``).
"""
