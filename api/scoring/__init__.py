"""File scoring: a whole CSV/Parquet file through the service's own validation and inference, in chunks.

``job.score_file`` runs it in this process (``api/score.py`` is its command line); ``spark`` runs the
same ``ChunkScorer`` inside Spark executors.
"""
