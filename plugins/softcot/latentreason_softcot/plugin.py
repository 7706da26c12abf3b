"""Hook implementations of the SoftCoT plugin (its entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_producers():
    """Register the ``softcot`` and ``softcotpp`` (SoftCoT++) producers, and the ``softcot-oracle`` control."""
    from latentreason_softcot.oracle import OracleProducer
    from latentreason_softcot.producer import SoftCoTProducer
    from latentreason_softcot.softcotpp import SoftCoTPPProducer

    return {"softcot": SoftCoTProducer, "softcotpp": SoftCoTPPProducer, "softcot-oracle": OracleProducer}


@hookimpl
def latentreason_projectors():
    """Register the ``linear`` and ``mlp`` projectors."""
    from latentreason_softcot.linear import LinearProjector
    from latentreason_softcot.mlp import MLPProjector

    return {"linear": LinearProjector, "mlp": MLPProjector}
