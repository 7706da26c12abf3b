"""From a config to a running method: plugin discovery (:mod:`.registry`), the config turned into
validated components (:mod:`.resolve`), a run prepared in one place (:mod:`.prepare`), the data
path of every method (:mod:`.pipeline`) and the vote over several chains (:mod:`.voting`)."""
