"""Wire bytes in the shapes real servers send (vLLM's OpenAI server, TGI), for codec tests."""

VLLM_CHAT_STREAM = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":"lo, w\xc3\xb6rld \xe2\x82\xac"},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":12,"total_tokens":16,"completion_tokens":4}}\n\n'
    b"data: [DONE]\n\n"
)

VLLM_COMPLETIONS_STREAM = (
    b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
    b'[{"index":0,"text":" one","logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
    b'[{"index":0,"text":" two","logprobs":null,"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)

REASONING_STREAM = (
    b": keep-alive comment\r\n\r\n"
    b"event: message\r\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"Let me think."},"finish_reason":null}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}]}\r\n\r\n'
    b"data: [DONE]\r\n\r\n"
)

ERROR_IN_STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
    b'data: {"error":{"object":"error","message":"CUDA out of memory","type":"InternalServerError","code":500}}\n\n'
    b"data: [DONE]\n\n"
)

TGI_STREAM = (
    b'data:{"index":1,"token":{"id":22557,"text":"Hello","logprob":-0.1,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data:{"index":2,"token":{"id":28725,"text":" \xe4\xb8\x96\xe7\x95\x8c","logprob":-0.2,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data:{"index":3,"token":{"id":2,"text":"</s>","logprob":-0.3,"special":true},'
    b'"generated_text":"Hello \xe4\xb8\x96\xe7\x95\x8c","details":{"finish_reason":"eos_token","generated_tokens":3,'
    b'"seed":null}}\n\n'
)

TGI_ERROR_STREAM = (
    b'data:{"index":1,"token":{"id":1,"text":"a","logprob":-0.1,"special":false},"generated_text":null,"details":null}\n\n'
    b'data:{"error":"Request failed during generation: Server error: out of memory","error_type":"generation"}\n\n'
)
