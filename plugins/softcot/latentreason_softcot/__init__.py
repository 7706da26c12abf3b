"""SoftCoT for latentreason: the assistant producer and the trainable projectors."""
