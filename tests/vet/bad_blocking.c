// expect: blocking@13 blocking@15 blocking@16 blocking@17 blocking@18
/* Blocking calls in a function that has a context: they cannot be stopped. */
#include <cctx.h>
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

ssize_t copy(cctx_t *ctx, int in, int out, pthread_t helper)
{
    (void)ctx;
    char buf[512];
    ssize_t n = read(in, buf, sizeof buf);
    if (n > 0)
        n = write(out, buf, (size_t)n);
    usleep(1000);
    pthread_mutex_lock(&mu);
    pthread_join(helper, NULL);
    pthread_mutex_unlock(&mu);
    return n;
}
