"""``python -m latentreason.cli`` (e.g. under torchrun): the ``latentreason`` command."""

from latentreason.cli import main

main()
