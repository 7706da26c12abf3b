"""SoftCoT for latentreason: the assistant producers (SoftCoT, SoftCoT++) and the trainable projectors."""
