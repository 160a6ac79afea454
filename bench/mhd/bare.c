/* SPDX-License-Identifier: MIT */
/*
 * The baseline of compare.sh: the same trivial handler on bare
 * libmicrohttpd with the same thread model as cctx-mhd (one internal epoll
 * thread; each complete request suspended and handed to one of 4 workers
 * through a mutex-protected queue; the worker builds the response and
 * resumes the connection), but no contexts, no trace, no disconnect watch,
 * no middleware.
 *
 *   cctx-mhd-bare PORT   serves until its standard input closes.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct req {
    struct MHD_Connection *conn;
    struct MHD_Response *resp;
    _Atomic int done;
    struct req *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct req *head, *tail;
static bool closing;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!head && !closing)
            pthread_cond_wait(&cv, &mu);
        if (!head)
            break;
        struct req *r = head;
        head = r->next;
        if (!head)
            tail = NULL;
        pthread_mutex_unlock(&mu);
        char *body = malloc(3);
        memcpy(body, "ok\n", 3);
        r->resp = MHD_create_response_from_buffer(3, body, MHD_RESPMEM_MUST_FREE);
        atomic_store_explicit(&r->done, 1, memory_order_release);
        MHD_resume_connection(r->conn);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    struct req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        r->conn = conn;
        *con_cls = r;
        return MHD_YES;
    }
    if (atomic_load_explicit(&r->done, memory_order_acquire)) {
        enum MHD_Result ret = MHD_queue_response(conn, 200, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
        return ret;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&mu);
    if (tail)
        tail->next = r;
    else
        head = r;
    tail = r;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct req *r = *con_cls;
    if (r && r->resp)
        MHD_destroy_response(r->resp);
    free(r);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    pthread_t w[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&w[i], NULL, worker, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)atoi(argv[1]), NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        perror("MHD_start_daemon");
        return 1;
    }
    printf("listening on %s\n", argv[1]);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    MHD_stop_daemon(d);
    pthread_mutex_lock(&mu);
    closing = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 4; i++)
        pthread_join(w[i], NULL);
    return 0;
}
