"""The plugin contract: the hook specifications (:mod:`.specs`) and the checks of what a plugin
registers, with the blame for a plugin's failure at run time (:mod:`.contract`)."""
