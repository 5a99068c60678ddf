"""Message passing of :mod:`cppgraph.nn.sparse` on a hand-made relation, and the head's gathers."""

from __future__ import annotations

import pytest
import torch

from cppgraph.nn.head import ScoreHead
from cppgraph.nn.sparse import EdgeWeights, GraphTensors, Relation


def test_aggregate_by_hand_and_its_gradient():
    # edges (src -> dst): 0->1, 2->1, 1->0, 2->2 (3 sources, 3 destinations), unsorted
    rel = Relation(torch.tensor([0, 2, 1, 2]), torch.tensor([1, 1, 0, 2]), 3, 3)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])  # the edge 2->2 is out of view
    w = rel.mean_weights(mask)
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]], requires_grad=True)
    out = rel.aggregate(x, w)
    # destination 0: mean of source 1; 1: mean of sources 0 and 2; 2: no edge in view
    assert torch.equal(out.detach(), torch.tensor([[2.0, 20.0], [2.5, 25.0], [0.0, 0.0]]))
    grad_out = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    out.backward(grad_out)
    # the transpose: source 0 and 2 each get half of destination 1's gradient, source 1
    # all of destination 0's; the edge out of view passes nothing
    assert torch.equal(x.grad, torch.tensor([[0.0, 0.5], [1.0, 0.0], [0.0, 0.5]]))


def test_aggregate_equals_the_edge_index_product():
    gen = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, 50, (400,), generator=gen), torch.randint(0, 30, (400,), generator=gen)
    rel = Relation(src, dst, 50, 30)
    w = torch.rand(400, generator=gen)
    x1 = torch.randn(50, 8, generator=gen, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    g = torch.randn(30, 8, generator=gen)
    out1, out2 = rel.aggregate(x1, w), rel.edge_index().matmul(x2, input_value=w)
    # the same sums up to float rounding (the kernels order them differently at some widths)
    assert torch.allclose(out1, out2, rtol=1e-6, atol=1e-5)
    out1.backward(g)
    out2.backward(g)
    assert torch.equal(x1.grad, x2.grad)


def test_edge_weights_permute_once_and_share_it_across_layers():
    gen = torch.Generator().manual_seed(1)
    src = torch.randint(0, 20, (100,), generator=gen)
    dst = torch.randint(0, 10, (100,), generator=gen)
    rel = Relation(src, dst, 20, 10)
    w = torch.rand(100, generator=gen)
    shared = EdgeWeights(rel, w)
    by_source = shared.by_source()
    # the layout by source: the edges in that order are sorted by source
    assert torch.equal(by_source, w[rel.csc_perm])
    assert rel.src[rel.csc_perm].diff().ge(0).all()
    assert shared.by_source() is by_source  # computed once
    # two layers with the same weights: gradients as one EdgeIndex product each
    x1 = torch.randn(20, 4, generator=gen, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    g = torch.randn(10, 4, generator=gen)
    (rel.aggregate(x1, shared) + rel.aggregate(x1 * 2.0, shared)).backward(g)
    index = rel.edge_index()
    (index.matmul(x2, input_value=w) + index.matmul(x2 * 2.0, input_value=w)).backward(g)
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="another relation"):
        Relation(dst, src, 10, 20).aggregate(torch.randn(10, 4), shared)
    with pytest.raises(NotImplementedError, match="no gradient"):
        EdgeWeights(rel, w.clone().requires_grad_())


def test_head_gathers_pairs():
    torch.manual_seed(0)
    head = ScoreHead(4, 1, 1, 2, mlp_hidden=6, bounded=False)
    g = GraphTensors.build(num_models=3, num_tasks=2, num_factors=2,
                           score_model=torch.tensor([0, 1]), score_task=torch.tensor([0, 1]),
                           score=torch.tensor([0.2, 0.8]),
                           model_factor=torch.tensor([[0, 1, 2], [0, 0, 1]]),
                           task_factor=torch.tensor([[0, 1], [1, 1]]),
                           model_x=torch.randn(3, 1), task_x=torch.randn(2, 1))
    h = {"model": torch.randn(3, 4), "task": torch.randn(2, 4)}
    terms = head.node_terms(g, h)
    pairs = torch.tensor([[2, 0, 2], [1, 1, 0]])
    got = head(terms, pairs)
    for i, (m, t) in enumerate(pairs.T.tolist()):
        a = (terms["model_in"][m] + terms["task_in"][t]
             + head.pair_in(terms["model"][m] * terms["task"][t])).relu()
        want = (head.out(a) + terms["model_dot"][m] @ terms["task_dot"][t]
                + terms["model_bias"][m] + terms["task_bias"][t])
        assert torch.allclose(got[i], want.squeeze(), atol=1e-6)
