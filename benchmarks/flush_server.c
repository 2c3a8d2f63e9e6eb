/* A streaming server that writes and flushes every token's SSE chunk on its own, as vLLM, TGI and
 * llama.cpp do: one write() per chunk on a TCP_NODELAY socket, streams served round robin, as fast
 * as the kernel takes them. For benchmarks/client_overhead.py: written in C so that the server
 * takes little of a small machine's CPU from the client being measured.
 *
 *   gcc -O2 -o flush_server flush_server.c && ./flush_server 0 [INTERVAL_US]   # prints "PORT n"
 *
 * INTERVAL_US: each stream's time between tokens (a timerfd keeps the schedule to the µs); 0 or
 * none: flat out. Paced just under what the client can take, each read carries one token.
 * POST /v1/chat/completions: an OpenAI chat stream (a role-only first delta, as vLLM sends, then one
 * content delta per token); POST /generate_stream: a TGI stream (one {"token": …} event per token, the
 * last with generated_text and details); any other POST: an OpenAI completions stream. max_tokens
 * chunks (the body's "max_tokens" or "max_new_tokens", default 512); the OpenAI ones end with a finish
 * reason, a usage chunk and [DONE]. Chunked transfer encoding, keep-alive.
 * GET /v1/models: one model, "flush". GET /count: {"chunks": N}, the content chunks written so
 * far (the throughput truth). Only 127.0.0.1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
enum { COMPLETIONS, CHAT, TGI };
#define BUFFER 65536

typedef struct {
    int fd;
    char in[BUFFER];
    size_t in_len;
    char out[BUFFER];
    size_t out_len, out_sent;
    int streaming, remaining, total, closing, api;
    long long due_ns; /* paced: when its next chunk is due */
} Connection;

static long long interval_ns;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static Connection *connections[MAX_CONNECTIONS];
static long long chunks_written;

static void drop(int epoll, Connection *c) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    connections[c->fd] = NULL;
    free(c);
}

/* Sends what is queued; 0 when all of it went, 1 when the socket is full, -1 when it broke. */
static int flush_out(Connection *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
        c->out_sent += (size_t)n;
    }
    c->out_len = c->out_sent = 0;
    return 0;
}

static void queue(Connection *c, const char *data, size_t length) {
    if (c->out_len + length > BUFFER) return; /* never: one chunk at a time is queued */
    memcpy(c->out + c->out_len, data, length);
    c->out_len += length;
}

static void queue_chunk(Connection *c, const char *payload) {
    char frame[512];
    int body = snprintf(frame + 16, sizeof frame - 32, "data: %s\n\n", payload);
    int head = snprintf(frame, 16, "%x\r\n", body);
    memmove(frame + head, frame + 16, (size_t)body);
    memcpy(frame + head + body, "\r\n", 2);
    queue(c, frame, (size_t)(head + body + 2));
}

static void respond(Connection *c, const char *type, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", type,
                     strlen(body));
    queue(c, head, (size_t)n);
    queue(c, body, strlen(body));
}

/* One whole request in c->in: answer it; returns the bytes it took, 0 when it is not whole yet. */
static size_t handle_request(Connection *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) return 0;
    size_t head = (size_t)(end - c->in) + 4, body = 0;
    char *length = memmem(c->in, head, "Content-Length:", 15);
    if (length == NULL) length = memmem(c->in, head, "content-length:", 15);
    if (length != NULL) body = strtoul(length + 15, NULL, 10);
    if (c->in_len < head + body) return 0;
    if (strncmp(c->in, "GET /count", 10) == 0) {
        char text[64];
        snprintf(text, sizeof text, "{\"chunks\": %lld}", chunks_written);
        respond(c, "application/json", text);
    } else if (strncmp(c->in, "GET ", 4) == 0) {
        respond(c, "application/json", "{\"object\":\"list\",\"data\":[{\"id\":\"flush\",\"object\":\"model\"}]}");
    } else {
        int tokens = 512;
        char *max = memmem(c->in + head, body, "\"max_tokens\":", 13);
        if (max != NULL) tokens = atoi(max + 13);
        char *max_new = memmem(c->in + head, body, "\"max_new_tokens\":", 17);
        if (max_new != NULL) tokens = atoi(max_new + 17);
        c->api = strncmp(c->in, "POST /v1/chat/completions ", 26) == 0 ? CHAT
                 : strncmp(c->in, "POST /generate_stream ", 22) == 0 ? TGI : COMPLETIONS;
        if (tokens < 1) tokens = 1;
        static const char start[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n";
        queue(c, start, sizeof start - 1);
        c->streaming = 1;
        c->remaining = c->total = tokens;
        c->due_ns = now_ns();
        if (c->api == CHAT) /* vLLM's first chunk: the role, with empty content (not a token) */
            queue_chunk(c, "{\"id\":\"chatcmpl-flush\",\"object\":\"chat.completion.chunk\",\"model\":\"flush\","
                           "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                           "\"finish_reason\":null}]}");
    }
    return head + body;
}

/* The stream's next chunk: a token, or the last one with the finish reason (OpenAI: then usage and
 * [DONE]; TGI: generated_text and details in the same event). */
static void next_chunk(Connection *c) {
    const char *finish = c->remaining == 1 ? "\"length\"" : "null";
    char payload[512];
    int index = c->total - c->remaining + 1;
    if (c->api == TGI) {
        char last[256] = "\"generated_text\":null,\"details\":null";
        if (c->remaining == 1)
            snprintf(last, sizeof last, "\"generated_text\":\"tok\",\"details\":{\"finish_reason\":\"length\","
                     "\"generated_tokens\":%d,\"seed\":null}", c->total);
        snprintf(payload, sizeof payload, "{\"index\":%d,\"token\":{\"id\":1234,\"text\":\" tok\",\"logprob\":-0.5,"
                 "\"special\":false},%s}", index, last);
    } else if (c->api == CHAT) {
        snprintf(payload, sizeof payload,
                 "{\"id\":\"chatcmpl-flush\",\"object\":\"chat.completion.chunk\",\"model\":\"flush\",\"choices\":"
                 "[{\"index\":0,\"delta\":{\"content\":\" tok\"},\"finish_reason\":%s}]}", finish);
    } else {
        snprintf(payload, sizeof payload,
                 "{\"id\":\"cmpl-flush\",\"object\":\"text_completion\",\"model\":\"flush\",\"choices\":[{\"index\":0,"
                 "\"text\":\" tok\",\"finish_reason\":%s}]}", finish);
    }
    queue_chunk(c, payload);
    chunks_written++;
    if (--c->remaining == 0) {
        if (c->api != TGI) {
            snprintf(payload, sizeof payload,
                     "{\"id\":\"cmpl-flush\",\"object\":\"%s\",\"model\":\"flush\",\"choices\":[],"
                     "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%d,\"total_tokens\":%d}}",
                     c->api == CHAT ? "chat.completion.chunk" : "text_completion", c->total, c->total + 8);
            queue_chunk(c, payload);
            queue_chunk(c, "[DONE]");
        }
        queue(c, "0\r\n\r\n", 5);
        c->streaming = 0;
    }
}

static void on_readable(int epoll, Connection *c) {
    for (;;) {
        if (c->in_len == BUFFER) { drop(epoll, c); return; }
        ssize_t n = recv(c->fd, c->in + c->in_len, BUFFER - c->in_len, 0);
        if (n == 0) { drop(epoll, c); return; }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            drop(epoll, c);
            return;
        }
        c->in_len += (size_t)n;
    }
    while (!c->streaming && c->out_len == 0) {
        size_t taken = handle_request(c);
        if (taken == 0) break;
        memmove(c->in, c->in + taken, c->in_len - taken);
        c->in_len -= taken;
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("flush_server: cannot listen");
        return 1;
    }
    socklen_t size = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &size);
    interval_ns = argc > 2 ? atoll(argv[2]) * 1000LL : 0;
    printf("PORT %d\n", ntohs(address.sin_port));
    fflush(stdout);
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener}, ready[256];
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tick = {.events = EPOLLIN, .data.fd = timer};
    epoll_ctl(epoll, EPOLL_CTL_ADD, timer, &tick);
    for (;;) {
        int busy = 0;
        long long earliest = 0;
        for (int fd = 0; fd < MAX_CONNECTIONS; fd++) {
            Connection *c = connections[fd];
            if (c == NULL || !(c->streaming || c->out_len)) continue;
            if (c->out_len || !interval_ns) busy = 1;
            else if (!earliest || c->due_ns < earliest) earliest = c->due_ns;
        }
        if (!busy && earliest) { /* paced: sleep until the next chunk is due */
            struct itimerspec at = {.it_value = {.tv_sec = earliest / 1000000000LL, .tv_nsec = earliest % 1000000000LL}};
            timerfd_settime(timer, TFD_TIMER_ABSTIME, &at, NULL);
        }
        int count = epoll_wait(epoll, ready, 256, busy ? 0 : -1);
        for (int i = 0; i < count; i++) {
            int fd = ready[i].data.fd;
            if (fd == timer) {
                unsigned long long expirations;
                if (read(timer, &expirations, sizeof expirations) < 0) continue;
            } else if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (client >= MAX_CONNECTIONS) { close(client); continue; }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Connection *c = calloc(1, sizeof *c);
                    c->fd = client;
                    connections[client] = c;
                    struct epoll_event watch = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &watch);
                }
            } else if (connections[fd] && (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                on_readable(epoll, connections[fd]);
            }
        }
        /* one pass: every stream that can take it gets its queued bytes or its next chunk (when due), one
         * write each */
        long long now = interval_ns ? now_ns() : 0;
        for (int fd = 0; fd < MAX_CONNECTIONS; fd++) {
            Connection *c = connections[fd];
            if (c == NULL) continue;
            if (c->out_len == 0 && c->streaming && (!interval_ns || c->due_ns <= now)) {
                next_chunk(c);
                c->due_ns += interval_ns;
            }
            if (c->out_len == 0) continue;
            int sent = flush_out(c);
            if (sent < 0) { drop(epoll, c); continue; }
            if (sent == 0 && !c->streaming && c->in_len) on_readable(epoll, c); /* a pipelined request waits */
        }
    }
}
