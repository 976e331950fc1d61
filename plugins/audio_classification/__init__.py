"""Audio classification: a sound clip → one of N named labels (wav2vec2 on keyword spotting).

The plugin registered under the ``ftrun`` entry-point group; the task itself is in ``task.py``.
"""
