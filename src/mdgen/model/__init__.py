"""nn.Modules of MDGen: the velocity network and its parts (IPA trunk, space-time attention, heads)."""

from mdgen.model.attention import SinkAttention
from mdgen.model.blocks import FinalLayer, IPATrunkLayer, SequenceHead, SpaceTimeBlock, TimeEmbedder
from mdgen.model.ipa import InvariantPointAttention
from mdgen.model.network import MDGenNetwork, NetworkOutput
from mdgen.model.rotary import RotaryEmbedding
from mdgen.model.trunk import KeyFrameTrunk

__all__ = [
    "FinalLayer",
    "IPATrunkLayer",
    "InvariantPointAttention",
    "KeyFrameTrunk",
    "MDGenNetwork",
    "NetworkOutput",
    "RotaryEmbedding",
    "SequenceHead",
    "SinkAttention",
    "SpaceTimeBlock",
    "TimeEmbedder",
]
