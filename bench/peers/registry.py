"""Every peer module's PEER, by name (the driver's --peers choices)."""

from __future__ import annotations

from bench.peers import bentoml_peer, kserve_peer, litserve_peer, mlserver_peer, pytriton_peer
from bench.peers.base import Peer

PEERS: dict[str, Peer] = {
    p.name: p for p in (kserve_peer.PEER, mlserver_peer.PEER, pytriton_peer.PEER, litserve_peer.PEER, bentoml_peer.PEER)
}
