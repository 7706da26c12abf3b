"""What the core provides as a plugin of its own (:mod:`.plugin`): the tasks and their data,
the evaluators and answer extraction, the ``placeholder`` injector and the ``identity`` projector."""
