"""Plugins: the hook specifications (:mod:`.specs`), discovery (:mod:`.registry`)
and turning a config into validated components (:mod:`.resolve`)."""
