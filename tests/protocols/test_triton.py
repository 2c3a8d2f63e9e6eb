"""The Triton codecs: generate/generate_stream JSON and SSE, KServe v2 JSON tensors, gRPC protobuf."""

from __future__ import annotations

import json

import pytest
from tritonclient.grpc import service_pb2

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    GRPC_STREAM,
    GRPC_UNARY,
    ContentChunk,
    Finish,
    GenerationParams,
    ResponseComplete,
    ServerError,
)
from loadgen.protocols.triton import (
    ModelSignature,
    TensorInfo,
    TritonGenerateCodec,
    TritonGrpcCodec,
    TritonInferCodec,
    parse_signature,
    parse_triton_options,
    raw_tensor_values,
    signature_problems,
)
from tests.protocols.helpers import feed_all

PROMPT = Prompt(id="p", text="hello there")


def params(**config: object) -> GenerationParams:
    return GenerationParams("llm", GenerationConfig(**config))  # type: ignore[arg-type]


def test_generate_request_uses_field_names_and_version() -> None:
    options = parse_triton_options({"text_input": "prompt", "max_tokens": "max_new_tokens", "model_version": "3"})
    request = TritonGenerateCodec(options).build_request(PROMPT, params(max_tokens=7, extra_body=(("top_k", 4),)))
    assert request.path == "/v2/models/llm/versions/3/generate_stream"
    assert json.loads(request.body) == {"prompt": "hello there", "max_new_tokens": 7, "top_k": 4}


def test_trtllm_preset_streams_and_ignores_eos_with_min_length() -> None:
    options = parse_triton_options({"preset": "trtllm"})
    body = json.loads(TritonGenerateCodec(options).build_request(PROMPT, params(max_tokens=9, ignore_eos=True)).body)
    assert body == {"text_input": "hello there", "max_tokens": 9, "stream": True, "min_length": 9,
                    "bad_words": "", "stop_words": ""}  # fmt: skip


def test_vllm_preset_sends_sampling_parameters_as_json_text() -> None:
    options = parse_triton_options({"preset": "vllm"})
    request = TritonGenerateCodec(options).build_request(PROMPT, params(max_tokens=5, ignore_eos=True, stream=False))
    body = json.loads(request.body)
    assert request.path == "/v2/models/llm/generate"
    assert json.loads(body["sampling_parameters"]) == {"max_tokens": 5, "ignore_eos": True}
    assert body["stream"] is False and body["exclude_input_in_output"] is True


STREAM = (
    b'data: {"model_name":"llm","model_version":"1","text_output":"Hel"}\n\n'
    b'data: {"model_name":"llm","model_version":"1","text_output":"lo \\u00e9"}\n\n'
    b'data: {"model_name":"llm","model_version":"1","text_output":"!","finish_reason":["stop"]}\n\n'
)


@pytest.mark.parametrize("cut", [1, 10, 60, 100, len(STREAM) - 1])
def test_generate_stream_ends_without_done(cut: int) -> None:
    events = feed_all(TritonGenerateCodec().decoder(stream=True), STREAM, cut)
    assert events == [ContentChunk("Hel"), ContentChunk("lo é"), ContentChunk("!"), Finish("stop")]


def test_generate_stream_error_event_on_a_200_response() -> None:
    data = STREAM.split(b"\n\n")[0] + b'\n\ndata: {"error":"model crashed"}\n\n'
    assert feed_all(TritonGenerateCodec().decoder(stream=True), data)[-1] == ServerError("model crashed")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without a response"),
        (b"data: {not json}\n\n", "not valid JSON"),
        (b'data: {"model_name":"llm","other":"x"}\n\n', r"no 'text_output' field \(it has: other\)"),
        (b'data: ["a"]\n\n', "not a JSON object"),
        (b'data: {"text_output":"a"}\n\ndata: {"text_out', "inside an SSE event"),
    ],
)
def test_generate_stream_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        feed_all(TritonGenerateCodec().decoder(stream=True), data)


def test_generate_whole_body() -> None:
    decoder = TritonGenerateCodec().decoder(stream=False)
    assert feed_all(decoder, b'{"model_name":"m","text_output":"all of it"}') == [ContentChunk("all of it")]
    with pytest.raises(ProtocolError):
        feed_all(TritonGenerateCodec().decoder(stream=False), b'{"model_name":"m"')


BATCHED = ModelSignature(
    "llm",
    {"text_input": TensorInfo("BYTES", (-1, 1)), "max_tokens": TensorInfo("INT32", (-1, 1)),
     "temperature": TensorInfo("FP32", (-1, 1), optional=True)},
    {"text_output": TensorInfo("BYTES", (-1, 1))},
    max_batch_size=8,
)  # fmt: skip


def test_infer_tensors_take_datatypes_and_batch_dimension_from_metadata() -> None:
    codec = TritonInferCodec(parse_triton_options({}), BATCHED)
    body = json.loads(codec.build_request(PROMPT, params(max_tokens=4, temperature=0.5)).body)
    assert body["inputs"] == [
        {"name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": ["hello there"]},
        {"name": "max_tokens", "datatype": "INT32", "shape": [1, 1], "data": [4]},
        {"name": "temperature", "datatype": "FP32", "shape": [1, 1], "data": [0.5]},
    ]
    assert body["outputs"] == [{"name": "text_output"}]


def test_infer_template_with_token_ids_counts_generated_tokens() -> None:
    options = parse_triton_options({"preset": "fastertransformer"})
    inputs = {"input_ids": TensorInfo("UINT32", (-1,)), "input_lengths": TensorInfo("UINT32", (1,)),
              "request_output_len": TensorInfo("UINT32", (1,))}  # fmt: skip
    signature = ModelSignature("ft", inputs, {"output_ids": TensorInfo("UINT32", (-1,))})

    def encode(text: str) -> list[int]:
        return [len(word) for word in text.split()]

    codec = TritonInferCodec(options, signature, encode)
    body = json.loads(codec.build_request(PROMPT, params(max_tokens=3)).body)
    assert [(t["name"], t["shape"], t["data"]) for t in body["inputs"]] == [
        ("input_ids", [2], [5, 5]), ("input_lengths", [1], [2]), ("request_output_len", [1], [3])]  # fmt: skip
    response = {"outputs": [{"name": "output_ids", "datatype": "UINT32", "shape": [5], "data": [5, 5, 9, 9, 9]}]}
    assert feed_all(codec.decoder(False, PROMPT), json.dumps(response).encode()) == [ContentChunk("", tokens=3)]


def test_token_id_template_without_tokenizer_is_a_clear_error() -> None:
    codec = TritonInferCodec(parse_triton_options({"preset": "fastertransformer"}))
    with pytest.raises(ProtocolError, match="give --tokenizer"):
        codec.build_request(PROMPT, params())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"outputs": [{"name": "other", "datatype": "BYTES", "data": ["x"]}]}', "no output 'text_output'"),
        (b'{"model_name": "m"}', "no 'outputs' list"),
        (b"[1]", "not a JSON object"),
    ],
)
def test_infer_response_malformed(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        feed_all(TritonInferCodec().decoder(False), body)


def test_infer_error_body_is_a_server_error() -> None:
    assert feed_all(TritonInferCodec().decoder(False), b'{"error": "boom"}') == [ServerError("boom")]


def _stream_response(text: bytes | None, final: bool, error: str = "") -> bytes:
    message = service_pb2.ModelStreamInferResponse(error_message=error)
    response = message.infer_response
    if text is not None:
        response.outputs.add(name="text_output", datatype="BYTES", shape=[1])
        response.raw_output_contents.append(len(text).to_bytes(4, "little") + text)
    response.parameters["triton_final_response"].bool_param = final
    return message.SerializeToString()


def test_grpc_stream_request_asks_for_the_empty_final_response() -> None:
    codec = TritonGrpcCodec(parse_triton_options({}), BATCHED)
    request = codec.build_request(PROMPT, params(max_tokens=4))
    assert (request.method, request.path) == (GRPC_STREAM, "/inference.GRPCInferenceService/ModelStreamInfer")
    message = service_pb2.ModelInferRequest.FromString(request.body)
    assert message.model_name == "llm"
    assert message.parameters["triton_enable_empty_final_response"].bool_param
    assert [(i.name, list(i.shape)) for i in message.inputs] == [("text_input", [1, 1]), ("max_tokens", [1, 1])]
    assert list(message.inputs[0].contents.bytes_contents) == [b"hello there"]
    assert list(message.inputs[1].contents.int_contents) == [4]


def test_grpc_stream_decoder_stops_at_the_final_response() -> None:
    decoder = TritonGrpcCodec().decoder(stream=True)
    assert decoder.feed(_stream_response(b"Hi", False)) == [ContentChunk("Hi")]
    assert decoder.feed(_stream_response(b" there", False)) == [ContentChunk(" there")]
    assert decoder.feed(_stream_response(None, True)) == [ResponseComplete()]
    assert decoder.close() == []


def test_grpc_stream_error_message_ends_the_response() -> None:
    decoder = TritonGrpcCodec().decoder(stream=True)
    decoder.feed(_stream_response(b"Hi", False))
    assert decoder.feed(_stream_response(None, False, error="failed after 1 token")) == [
        ServerError("failed after 1 token"), ResponseComplete()]  # fmt: skip


def test_grpc_stream_cut_before_the_final_response() -> None:
    decoder = TritonGrpcCodec().decoder(stream=True)
    decoder.feed(_stream_response(b"Hi", False))
    with pytest.raises(ProtocolError, match="triton_final_response"):
        decoder.close()


def test_grpc_garbage_message() -> None:
    with pytest.raises(ProtocolError, match="not a valid ModelStreamInferResponse"):
        TritonGrpcCodec().decoder(stream=True).feed(b"\xff\xff\xff\xff")


def test_grpc_unary_request() -> None:
    request = TritonGrpcCodec().build_request(PROMPT, params(stream=False))
    assert request.method == GRPC_UNARY
    response = service_pb2.ModelInferResponse()
    response.outputs.add(name="text_output", datatype="BYTES", shape=[1])
    response.raw_output_contents.append(b"\x03\x00\x00\x00abc")
    decoder = TritonGrpcCodec().decoder(stream=False)
    assert decoder.feed(response.SerializeToString()) == [ContentChunk("abc"), ResponseComplete()]


@pytest.mark.parametrize(
    ("datatype", "raw", "message"),
    [("BYTES", b"\x05\x00", "length prefix"), ("BYTES", b"\x05\x00\x00\x00ab", "past the end"),
     ("INT32", b"\x01\x02\x03", "not whole elements"), ("COMPLEX", b"", "unknown tensor datatype")],
)  # fmt: skip
def test_raw_tensor_contents_malformed(datatype: str, raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        raw_tensor_values(datatype, raw)


def test_raw_tensor_contents() -> None:
    assert raw_tensor_values("BYTES", b"\x01\x00\x00\x00a\x00\x00\x00\x00") == [b"a", b""]
    assert raw_tensor_values("INT32", (7).to_bytes(4, "little") + (-1).to_bytes(4, "little", signed=True)) == [7, -1]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [({"preset": "nope"}, "preset: expected one of"), ({"text_inptu": "x"}, "unknown key 'text_inptu'"),
     ({"inputs": [{"name": "a"}]}, r"inputs\[0\]: expected"),
     ({"inputs": [{"name": "a", "value": "$promt"}]}, "unknown placeholder"),
     ({"inputs": [{"name": "a", "value": 1, "datatype": "INT33"}]}, "datatype: expected"),
     ({"inputs": [{"name": "a", "value": 1, "shape": "1"}]}, "shape: expected"),
     ({"constants": [1]}, "constants: expected a mapping")],
)  # fmt: skip
def test_bad_triton_options(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_triton_options(mapping)


def test_signature_problems_name_what_is_wrong() -> None:
    signature = parse_signature(
        {"name": "ens", "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1]},
                                   {"name": "seed", "datatype": "INT64", "shape": [1]}],
         "outputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]},
        {"max_batch_size": 0, "model_transaction_policy": {"decoupled": True}, "input": [{"name": "seed"}]},
    )  # fmt: skip
    problems = signature_problems(parse_triton_options({}), signature, "triton-grpc", stream=False)
    assert any("no input 'text_input' (its inputs: prompt (BYTES), seed (INT64))" in p for p in problems), problems
    assert any("requires input(s) prompt, seed" in p for p in problems)
    assert any("no output 'text_output'" in p for p in problems)
    assert any("decoupled" in p for p in problems)
    fixed = parse_triton_options({"text_input": "prompt", "max_tokens": None, "text_output": "text",
                                  "constants": {"seed": 1}})  # fmt: skip
    assert signature_problems(fixed, signature, "triton-grpc", stream=True) == []


@pytest.mark.parametrize("metadata", [{"inputs": "x"}, {"inputs": [{"name": "a"}]}, []])
def test_malformed_metadata(metadata: object) -> None:
    with pytest.raises(ProtocolError):
        parse_signature(metadata)
