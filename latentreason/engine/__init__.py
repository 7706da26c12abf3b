"""The data path of every method (:mod:`.pipeline`) and the vote over several chains (:mod:`.voting`)."""
