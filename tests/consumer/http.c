/* SPDX-License-Identifier: MIT */
/*
 * Built against the *installed* cctx-mhd and cctx-curl (see check.sh): a
 * server and a client in one process, one request with a deadline and a
 * trace, a fixed transcript that check.sh compares line by line.
 */
#include <cctx.h>
#include <cctx/curl.h>
#include <cctx/mhd.h>
#include <cctx/propagate.h>

#include <stdio.h>
#include <string.h>

static void hello(cctx_t *ctx, cctx_mhd_request_t *req, cctx_mhd_response_t *resp, void *arg)
{
    (void)arg;
    int64_t deadline;
    cctx_mhd_printf(resp, "%s %s, deadline %s, trace %s\n", cctx_mhd_method(req),
                    cctx_mhd_path(req), cctx_deadline(ctx, &deadline) ? "yes" : "no",
                    cctx_trace_of(ctx) ? "yes" : "no");
}

static size_t print_body(char *ptr, size_t size, size_t n, void *arg)
{
    (void)arg;
    fwrite(ptr, size, n, stdout);
    return size * n;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cctx_mhd_t *srv = cctx_mhd_start(cctx_background(), NULL, hello, NULL);
    if (!srv) {
        perror("cctx_mhd_start");
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hello", cctx_mhd_port(srv));
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, print_body);
    cctx_t *ctx = cctx_with_timeout(cctx_background(), CCTX_SEC(10), NULL);
    int err = cctx_curl_perform(ctx, easy, NULL, NULL);
    printf("perform: %s\n", err == 0 ? "0" : strerror(err));
    cctx_release(ctx);
    curl_easy_cleanup(easy);
    cctx_mhd_free(srv);
    cctx_curl_thread_cleanup();
    curl_global_cleanup();
    return err;
}
