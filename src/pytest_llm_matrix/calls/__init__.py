"""Every request's path, from a test to a model and back.

The per-test context (:mod:`.context`), the sans-IO exchange that decides what a request
does (:mod:`.exchange`), the retry policy (:mod:`.retrying`), the caps and cooldowns shared
between processes (:mod:`.limits`), token usage (:mod:`.usage`), the httpx/httpx2 transport
drivers (:mod:`.transport`), the ``llm`` client (:mod:`.client`), the fixtures that build
clients bound to the test's model (:mod:`.fixtures`) and the binding of the SDK clients
that code under test builds itself (:mod:`.sdk_patch`).

Imports only the configuration (and, for the simulator's session service, the simulator).
"""
