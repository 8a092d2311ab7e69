"""Data: the reference layout, decoding, the training cache, the train/eval preprocessing
pair, loaders, sample data and importers.

Modules: ``layout`` (folders and classes), ``images`` (safe decoding, bad-file scan),
``cachefile`` + ``cache`` (one cache file; building and verifying a cache), ``root``
(:class:`DataRoot`: a folder or a cache), ``index`` (train/val/test of a root),
``coords`` (where each image was
taken), ``geo`` (distances, the GeoGuessr score, geocells), ``preprocessing`` + ``transforms`` (the train/eval pair), ``loader``, ``synth`` (sample
data), ``download`` (the reference dataset).
"""
