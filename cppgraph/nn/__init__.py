"""Neural modules (torch only: no pandas, no names): graph encoders and the scoring head."""

from cppgraph.nn.encoders import ENCODERS, LightGCNEncoder, SAGEEncoder, make_encoder
from cppgraph.nn.head import ScoreHead

__all__ = ["ENCODERS", "LightGCNEncoder", "SAGEEncoder", "ScoreHead", "make_encoder"]
