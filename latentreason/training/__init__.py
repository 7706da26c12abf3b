"""Training of a method's trainable parts (:mod:`.trainer`) and of the segment-boundary trigger (:mod:`.trigger`)."""
