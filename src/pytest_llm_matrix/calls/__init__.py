"""Every request's path, from a test to a model and back.

The per-test context (:mod:`.context`), the sans-IO exchange that decides what a request
does (:mod:`.exchange`), the retry policy (:mod:`.retrying`), the caps and cooldowns shared
between processes (:mod:`.limits`), token usage (:mod:`.usage`), the httpx/httpx2 transport
drivers (:mod:`.transport`), the ``llm`` client (:mod:`.client`) and the fixtures that
build clients bound to the test's model (:mod:`.fixtures`). The official SDKs' clients are
:mod:`pytest_llm_matrix.adoption`'s.

Imports only the configuration (and, for the simulator's session service, the simulator).
"""
