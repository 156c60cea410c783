"""The configuration: what runs.

The model spec (:mod:`.models`), the registry read from ``[tool.llm-matrix]`` and the
``pytest_llm_matrix_models`` hook (:mod:`.registry`), the selection language
(:mod:`.selection`), the command-line and ini options resolved into one ``Settings``
(:mod:`.options`), the checks that turn bad input into usage errors (:mod:`.checks`), and
the redaction of the configured keys from everything a run writes (:mod:`.redaction`).

The lowest part: it imports nothing else of the plugin.
"""
