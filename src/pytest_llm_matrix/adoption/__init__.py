"""Adopting a suite that uses the official SDKs: which SDK releases are supported
(:mod:`.sdks`), which requests go to the model under test (:mod:`.routes`), the binding of
every SDK client at request time (:mod:`.binding`) and the SDK fixtures (:mod:`.fixtures`).

Imports the calls part (the transport every bound request goes through) and the parts
below it.
"""
