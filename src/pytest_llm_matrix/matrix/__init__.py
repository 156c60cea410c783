"""The matrix of items: each model test once per selected model, and runs of repeated tests.

The names a user writes (here: the ``llm`` marker, its keywords, and the ``llm_model``
fixture that makes a test a model test), the per-model parametrization (:mod:`.parametrize`),
repeated tests' runs and their verdicts (:mod:`.repeats`) and the fixtures that belong to
the matrix rather than to a request (:mod:`.fixtures`: a run's spec, per-model snapshots).
"""

from __future__ import annotations

from typing import Final

FIXTURE: Final = "llm_model"
#: The fixture that makes a test a model test whose SDK clients are bound to the model
#: under test (see pytest_llm_matrix.adoption).
SDKS_FIXTURE: Final = "llm_sdks"
MARKER: Final = "llm"
MARKER_HELP: Final = (
    "llm(models=None, exclude=None, repeat=None, min_pass_rate=None): run this test (class, "
    "module) only on the given models, groups or tags, intersected with the selection; "
    "exclude= removes models; repeat=N runs it N times per model, passing when at least "
    "min_pass_rate (0-1 or a percentage like '80%', default 1) of the runs pass."
)
MARKER_KWARGS: Final = ("models", "exclude", "repeat", "min_pass_rate")
