/* The floor: the least CPU any client can spend per streamed chunk on this machine. A client that
 * does only what every streaming client must (epoll, one recvmsg per read with the kernel's
 * SO_TIMESTAMPNS arrival stamp, finding the chunks in the bytes and the end of each response, sending
 * the next request on the same keep-alive connection) and nothing else: no HTTP or JSON parsing, no
 * records. For benchmarks/client_overhead.py, which runs it against flush_server.c beside loadgen so
 * that loadgen's figure has a floor measured on the same machine in the same session.
 *
 *   gcc -O2 -o floor_client floor_client.c
 *   ./floor_client PORT USERS REQUESTS_PER_USER TOKENS [PAUSE_US] [API]
 *
 * PAUSE_US: sleep this long after each pass over the ready streams (as loadgen's read batching does).
 * API: openai-completions (default), openai-chat or tgi: the path, body and content-chunk mark.
 *
 * Prints one JSON line: content chunks and reads over the whole load and, over its middle half (CPU
 * sampled every 50 ms), steady chunks per CPU-second of this process (user + system). Only 127.0.0.1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER (256 * 1024)
#define MAX_SAMPLES 100000
#define END_MARK "0\r\n\r\n"
#define TAIL 24 /* longer than any mark */

typedef struct {
    int fd, requests_left;
    char tail[32]; /* the last bytes of the previous read: a mark may straddle two reads */
    size_t tail_len;
} Stream;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

static char request[512];
static size_t request_len;

static long long count_marks(const char *data, size_t length, const char *mark) {
    long long found = 0;
    size_t mark_len = strlen(mark);
    const char *at = data, *end = data + length;
    while ((at = memmem(at, (size_t)(end - at), mark, mark_len)) != NULL) {
        found++;
        at += mark_len;
    }
    return found;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: floor_client PORT USERS REQUESTS_PER_USER TOKENS\n");
        return 2;
    }
    int port = atoi(argv[1]), users = atoi(argv[2]), per_user = atoi(argv[3]), tokens = atoi(argv[4]), one = 1;
    int pause_us = argc > 5 ? atoi(argv[5]) : 0;
    const char *api = argc > 6 ? argv[6] : "openai-completions", *path, *chunk_mark, *body_form;
    if (strcmp(api, "openai-chat") == 0) {
        path = "/v1/chat/completions";
        chunk_mark = "\"delta\":{\"content\""; /* the role-only first delta is not a token */
        body_form = "{\"model\":\"flush\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":%d,"
                    "\"stream\":true}";
    } else if (strcmp(api, "tgi") == 0) {
        path = "/generate_stream";
        chunk_mark = "\"token\":{";
        body_form = "{\"inputs\":\"hi\",\"parameters\":{\"max_new_tokens\":%d}}";
    } else {
        path = "/v1/completions";
        chunk_mark = "\"text\":";
        body_form = "{\"model\":\"flush\",\"prompt\":\"hi\",\"max_tokens\":%d,\"stream\":true}";
    }
    char body[256];
    int body_len = snprintf(body, sizeof body, body_form, tokens);
    request_len = (size_t)snprintf(request, sizeof request,
                                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                   "Content-Length: %d\r\n\r\n%s", path, body_len, body);
    int epoll = epoll_create1(0);
    Stream *streams = calloc((size_t)users, sizeof *streams);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    for (int i = 0; i < users; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
            perror("floor_client: connect");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        streams[i].fd = fd;
        streams[i].requests_left = per_user;
        struct epoll_event watch = {.events = EPOLLIN, .data.ptr = &streams[i]};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &watch);
    }
    static char buffer[BUFFER + TAIL];
    char control[CMSG_SPACE(sizeof(struct timespec))];
    static long long sample_chunks[MAX_SAMPLES];
    static double sample_cpu[MAX_SAMPLES];
    int samples = 0, open_streams = users;
    long long chunks = 0, reads = 0, stamped = 0, stamp_sum = 0, next_sample = 0;
    for (int i = 0; i < users; i++) {
        streams[i].requests_left--;
        if (send(streams[i].fd, request, request_len, 0) != (ssize_t)request_len) return 1;
    }
    struct epoll_event ready[256];
    while (open_streams > 0) {
        int count = epoll_wait(epoll, ready, 256, 10000);
        if (count <= 0) {
            fprintf(stderr, "floor_client: no bytes for 10 s\n");
            return 1;
        }
        for (int i = 0; i < count; i++) {
            Stream *s = ready[i].data.ptr;
            memcpy(buffer, s->tail, s->tail_len);
            struct iovec into = {.iov_base = buffer + s->tail_len, .iov_len = BUFFER};
            struct msghdr message = {.msg_iov = &into, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof control};
            ssize_t n = recvmsg(s->fd, &message, MSG_DONTWAIT);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) continue;
                fprintf(stderr, "floor_client: the server closed a stream\n");
                return 1;
            }
            reads++;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec arrival;
                    memcpy(&arrival, CMSG_DATA(c), sizeof arrival);
                    stamp_sum += arrival.tv_nsec;
                    stamped++;
                }
            }
            size_t length = s->tail_len + (size_t)n;
            /* a mark found in the tail was counted with the read before: only marks that end in the new bytes */
            chunks += count_marks(buffer, length, chunk_mark) - count_marks(buffer, s->tail_len, chunk_mark);
            int ended = length >= 5 && memcmp(buffer + length - 5, END_MARK, 5) == 0;
            s->tail_len = length < TAIL ? length : TAIL;
            memcpy(s->tail, buffer + length - s->tail_len, s->tail_len);
            if (!ended) continue;
            s->tail_len = 0;
            if (s->requests_left-- > 0) {
                if (send(s->fd, request, request_len, 0) != (ssize_t)request_len) return 1;
            } else {
                epoll_ctl(epoll, EPOLL_CTL_DEL, s->fd, NULL);
                close(s->fd);
                open_streams--;
            }
        }
        if (pause_us) usleep((useconds_t)pause_us); /* as loadgen's read batching: fewer wake-ups, more reads each */
        long long now = now_ns();
        if (now >= next_sample && samples < MAX_SAMPLES) {
            sample_cpu[samples] = cpu_seconds();
            sample_chunks[samples] = chunks;
            samples++;
            next_sample = now + 50000000LL;
        }
    }
    int first = samples / 4, last = samples * 3 / 4;
    double steady = last > first ? (double)(sample_chunks[last] - sample_chunks[first]) /
                                       (sample_cpu[last] - sample_cpu[first] + 1e-9)
                                 : 0.0;
    printf("{\"chunks\": %lld, \"reads\": %lld, \"stamped_reads\": %lld, \"steady\": %.0f, \"cpu_s\": %.3f, "
           "\"stamp_check\": %lld}\n", chunks, reads, stamped, steady, cpu_seconds(), stamp_sum % 7);
    return 0;
}
