"""The report: what a run tells its user and its CI.

Aggregates per model (:mod:`.stats`), prices and cost (:mod:`.cost`), the table's rendering
(:mod:`.render`), the summary plugin with its outputs — terminal table, JSON report
(``report_schema.json``), JUnit properties, GitHub step summary, gates and budget —
(:mod:`.summary`) and live progress (:mod:`.live`).
"""
