#!/usr/bin/python3
"""make-onnx.py DIR — fixtures for tests/cli-onnx.sh, written by onnx itself.

In DIR:
  model.onnx         a network built with onnx.helper and saved with
                     onnx.save, checked by onnx.checker: MatMul(X, W) with W
                     in x out, Gemm with transB=1 and transB=0, Transpose(W)
                     feeding MatMul, a Constant node's weight, float16
                     weights in int32_data and in raw_data (through Cast),
                     a Conv and a depthwise Conv (group = channels), a Gather
                     embedding, a 2-D table only added (not a layer), an
                     int64 shape for Reshape, and an If whose branches hold
                     an initializer and a Constant node;
  ext/model.onnx     the same model saved with its tensors in ext/weights.bin
                     (save_as_external_data, one file, size_threshold=0;
                     the float16 weight in int32_data stays in the model);
  model.safetensors  its safetensors twin (checklib.py's writer), each
                     layer stored out x in, so the in x out weights are
                     transposed;
  roles.onnx         a model for the roles alone: Gemm with A constant
                     (transA 0 and 1), MatMul(W, X), ConvTranspose (group 1
                     and 2), a weight two ops use differently, an int8
                     weight through DequantizeLinear, Transpose without
                     perm, Identity chains, an unused weight, a STRING
                     initializer and a sparse_initializer;
  expect.json        what each model's tensors are: {"model": {"order":
                     [...], "tensors": {name: [role, layout, groups]}},
                     "roles": ...}, from the graphs built here.
"""
import copy
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import write_safetensors  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]
rng = np.random.default_rng(11)


def f32(*shape):
    return rng.standard_normal(shape).astype("<f4")


def init(name, a):
    return numpy_helper.from_array(a, name)


def vinfo(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def main_model():
    """The network and, per weight, (array stored out x in, role, layout, groups)."""
    w = {
        "fc.in_out": f32(8, 12), "gemm.t": f32(10, 12), "gemm.t.bias": f32(10),
        "gemm.n": f32(10, 6), "tr.w": f32(5, 6), "const.w": f32(5, 4),
        "half.typed": f32(4, 3).astype("<f2"), "half.raw": f32(3, 3).astype("<f2"),
        "conv.w": f32(6, 3, 3, 3), "conv.b": f32(6), "dw.w": f32(6, 1, 3, 3),
        "shape": np.array([1, 96], dtype="<i8"), "embed.tokens": f32(20, 7),
        "add.table": f32(3, 7), "then.w": f32(3, 4), "else.w": f32(3, 4),
    }
    # half.typed goes in int32_data (helper.make_tensor with raw=False
    # stores each float16's bits in one int32), the rest in raw_data
    typed = helper.make_tensor("half.typed", TensorProto.FLOAT16, [4, 3],
                               w["half.typed"].flatten().tolist(), raw=False)
    assert len(typed.int32_data) == 12 and not typed.raw_data
    inits = [init(n, w[n]) for n in ("fc.in_out", "gemm.t", "gemm.t.bias", "gemm.n",
                                     "tr.w", "half.raw", "conv.w", "conv.b", "dw.w",
                                     "shape", "embed.tokens", "add.table")]
    inits.insert(5, typed)
    const = helper.make_node("Constant", [], ["const.w"], name="const",
                             value=init("const.value", w["const.w"]))
    then_g = helper.make_graph(
        [helper.make_node("MatMul", ["h7", "then.w"], ["t_out"], name="then_mm")],
        "then", [], [vinfo("t_out", TensorProto.FLOAT, [2, 4])],
        [init("then.w", w["then.w"])])
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["else.w"], name="else_const",
                          value=init("else.value", w["else.w"])),
         helper.make_node("MatMul", ["h7", "else.w"], ["e_out"], name="else_mm")],
        "else", [], [vinfo("e_out", TensorProto.FLOAT, [2, 4])])
    nodes = [
        helper.make_node("MatMul", ["X", "fc.in_out"], ["h1"], name="fc"),
        helper.make_node("Gemm", ["h1", "gemm.t", "gemm.t.bias"], ["h2"], name="gemm_t",
                         transB=1),
        helper.make_node("Gemm", ["h2", "gemm.n"], ["h3"], name="gemm_n", transB=0),
        helper.make_node("Transpose", ["tr.w"], ["tr.wT"], name="tr", perm=[1, 0]),
        helper.make_node("MatMul", ["h3", "tr.wT"], ["h4"], name="tr_mm"),
        const,
        helper.make_node("MatMul", ["h4", "const.w"], ["h5"], name="const_mm"),
        helper.make_node("Cast", ["half.typed"], ["half.typed32"], name="cast_t",
                         to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["h5", "half.typed32"], ["h6"], name="half_t_mm"),
        helper.make_node("Cast", ["half.raw"], ["half.raw32"], name="cast_r",
                         to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["h6", "half.raw32"], ["h7"], name="half_r_mm"),
        helper.make_node("If", ["cond"], ["y_if"], name="branch", then_branch=then_g,
                         else_branch=else_g),
        helper.make_node("Conv", ["img", "conv.w", "conv.b"], ["c1"], name="conv"),
        helper.make_node("Conv", ["c1", "dw.w"], ["c2"], name="dw", group=6),
        helper.make_node("Reshape", ["c2", "shape"], ["flat"], name="flatten"),
        helper.make_node("Gather", ["embed.tokens", "ids"], ["e"], name="embed"),
        helper.make_node("Add", ["e", "add.table"], ["e2"], name="add"),
    ]
    graph = helper.make_graph(
        nodes, "fixture",
        [vinfo("X", TensorProto.FLOAT, [2, 8]), vinfo("img", TensorProto.FLOAT, [1, 3, 8, 8]),
         vinfo("ids", TensorProto.INT64, [3]), vinfo("cond", TensorProto.BOOL, [])],
        [vinfo("y_if", TensorProto.FLOAT, [2, 4]), vinfo("flat", TensorProto.FLOAT, [1, 96]),
         vinfo("e2", TensorProto.FLOAT, [3, 7])], inits)
    model = helper.make_model(graph, producer_name="make-onnx.py", producer_version="1",
                              opset_imports=OPSET)
    helper.set_model_props(model, {"purpose": "rankscope test"})
    lin_io, lin_oi = ["linear", "in,out", None], ["linear", "out,in", None]
    other = ["other", "out,in", None]
    expect = {
        "fc.in_out": lin_io, "gemm.t": lin_oi, "gemm.t.bias": other, "gemm.n": lin_io,
        "tr.w": lin_oi, "const.w": lin_io, "half.typed": lin_io, "half.raw": lin_io,
        "then.w": lin_io, "else.w": lin_io, "conv.w": ["conv", "out,in", 1],
        "conv.b": other, "dw.w": ["conv", "out,in", 6], "shape": other,
        "embed.tokens": ["embedding", "out,in", None], "add.table": other,
    }
    # the If's branches stand where the If does, in the order of its
    # attributes (make_node sorts them: else_branch first)
    order = ["fc.in_out", "gemm.t", "gemm.t.bias", "gemm.n", "tr.w", "const.w",
             "half.typed", "half.raw", "else.w", "then.w", "conv.w", "conv.b", "dw.w",
             "shape", "embed.tokens", "add.table"]
    # the twin: every layer out x in
    twin = {}
    for name in order:
        role, layout, _ = expect[name]
        if role == "other":
            continue
        a = w[name]
        twin[name] = a.T.copy() if layout == "in,out" else a
    return model, {"order": order, "tensors": expect}, twin


def roles_model():
    w = {
        "gemm.a": f32(4, 8), "gemm.at": f32(8, 4), "mm.left": f32(4, 8),
        "convt.w": f32(4, 3, 3, 3), "convt.g": f32(4, 1, 3, 3), "shared": f32(8, 8),
        "tnp.w": f32(3, 8), "id.w": f32(8, 3), "unused.w": f32(3, 3),
    }
    q = rng.integers(-100, 100, (8, 4)).astype("i1")
    inits = [init(n, a) for n, a in w.items()] + [
        init("q.w", q), init("q.scale", np.array(0.05, "<f4")),
        init("q.zero", np.array(0, "i1")),
        helper.make_tensor("labels", TensorProto.STRING, [2], [b"cat", b"dog"]),
    ]
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sparse.w", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("sparse.idx", TensorProto.INT64, [2], [0, 5]), [3, 3])
    nodes = [
        helper.make_node("Transpose", ["X"], ["Xt"], name="xt"),
        helper.make_node("Gemm", ["gemm.a", "Xt"], ["ga"], name="gemm_a"),
        helper.make_node("Gemm", ["gemm.at", "Xt"], ["gat"], name="gemm_at", transA=1),
        helper.make_node("MatMul", ["mm.left", "Xt"], ["ml"], name="mm_left"),
        helper.make_node("ConvTranspose", ["img", "convt.w"], ["ct"], name="convt"),
        helper.make_node("ConvTranspose", ["img", "convt.g"], ["ctg"], name="convt_g",
                         group=2),
        helper.make_node("MatMul", ["X", "shared"], ["s1"], name="shared_mm"),
        helper.make_node("Add", ["shared", "shared"], ["s2"], name="shared_add"),
        helper.make_node("DequantizeLinear", ["q.w", "q.scale", "q.zero"], ["qf"],
                         name="deq"),
        helper.make_node("MatMul", ["X", "qf"], ["qo"], name="q_mm"),
        helper.make_node("Transpose", ["tnp.w"], ["tnpT"], name="tnp"),
        helper.make_node("MatMul", ["X", "tnpT"], ["to"], name="tnp_mm"),
        helper.make_node("Identity", ["id.w"], ["id1"], name="id_a"),
        helper.make_node("Identity", ["id1"], ["id2"], name="id_b"),
        helper.make_node("MatMul", ["X", "id2"], ["io"], name="id_mm"),
    ]
    outs = {"ga": [4, 2], "gat": [4, 2], "ml": [4, 2], "ct": [1, 3, 7, 7],
            "ctg": [1, 2, 7, 7], "s2": [8, 8], "qo": [2, 4], "to": [2, 3], "io": [2, 3]}
    graph = helper.make_graph(
        nodes, "roles",
        [vinfo("X", TensorProto.FLOAT, [2, 8]), vinfo("img", TensorProto.FLOAT, [1, 4, 5, 5])],
        [vinfo(o, TensorProto.FLOAT, s) for o, s in outs.items()], inits,
        sparse_initializer=[sparse])
    model = helper.make_model(graph, producer_name="make-onnx.py", opset_imports=OPSET)
    expect = {
        "gemm.a": ["linear", "out,in", None], "gemm.at": ["linear", "in,out", None],
        "mm.left": ["linear", "out,in", None], "convt.w": ["conv", "in,out", 1],
        "convt.g": ["conv", "in,out", 2], "shared": ["linear", "in,out", None],
        "q.w": ["linear", "in,out", None], "q.scale": ["other", "out,in", None],
        "q.zero": ["other", "out,in", None], "tnp.w": ["linear", "out,in", None],
        "id.w": ["linear", "in,out", None],
        # nothing consumes it: the graph says nothing (null: not checked)
        "unused.w": None,
    }
    order = ["gemm.a", "gemm.at", "mm.left", "convt.w", "convt.g", "shared", "q.w",
             "q.scale", "q.zero", "tnp.w", "id.w", "unused.w"]
    return model, {"order": order, "tensors": expect}


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "ext"), exist_ok=True)
    model, expect_model, twin = main_model()
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "model.onnx"))
    onnx.save_model(copy.deepcopy(model), os.path.join(out, "ext", "model.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    ext = onnx.load(os.path.join(out, "ext", "model.onnx"), load_external_data=False)
    locations = [t.data_location for t in ext.graph.initializer]
    assert TensorProto.EXTERNAL in locations and TensorProto.DEFAULT in locations, locations
    write_safetensors(os.path.join(out, "model.safetensors"), twin)
    roles, expect_roles = roles_model()
    onnx.checker.check_model(roles)
    onnx.save(roles, os.path.join(out, "roles.onnx"))
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump({"model": expect_model, "roles": expect_roles}, f, indent=1)


if __name__ == "__main__":
    main()
