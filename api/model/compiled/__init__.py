"""The compiled preprocessing: a fitted scikit-learn preprocessor as numpy tables, proven bit-identical before use.

``compile_preprocessor`` (plan.py) translates; ``verify_compiled`` (verify.py) proves the translation
equal to the library on a sample plus generated edge rows. The loader uses both; nothing else needs
the modules behind them.
"""

from api.model.compiled.errors import CompiledMismatch, UncompiledInput, UnsupportedPreprocessor
from api.model.compiled.plan import CompiledPreprocessor, compile_preprocessor
from api.model.compiled.verify import comparable, verify_compiled

__all__ = [
    "CompiledMismatch",
    "CompiledPreprocessor",
    "UncompiledInput",
    "UnsupportedPreprocessor",
    "comparable",
    "compile_preprocessor",
    "verify_compiled",
]
