"""modelo-ml-api: a production prediction API for a fitted preprocessor + model bundle."""

__version__ = "1.0.0"
